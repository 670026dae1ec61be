//! Concurrency on the real path: eight independent engines (each with its
//! own DynamoDB and EC2 clients) start together, the lock and operation
//! record on DynamoDB Local and the fleet on moto, all fed the same
//! scale-up observation. Exactly one operation may exist and exactly its
//! count of instances may be launched. Twenty rounds; every request is
//! checked against what the real services accept.

use crate::support;

use async_trait::async_trait;
use k3s_autoscaler::adapters::SystemClock;
use k3s_autoscaler::adapters::dynamodb::DynamoStateStore;
use k3s_autoscaler::adapters::ec2::Ec2Fleet;
use k3s_autoscaler::adapters::user_data::DEFAULT_TEMPLATE;
use k3s_autoscaler::engine::PolicyMemory;
use k3s_autoscaler::ports::*;
use k3s_autoscaler::runtime::Shutdown;
use k3s_autoscaler::runtime::executor::{Executor, StartRequest};
use k3s_autoscaler::runtime::ids::IdSource;
use k3s_autoscaler::runtime::lease::LockClient;
use k3s_autoscaler::runtime::settings::engine_settings;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// The same observation for every engine: five Ready workers at 90 % CPU.
/// (Kubernetes and Prometheus are not what this test is about.)
struct BusyCluster {
    clock: Arc<dyn Clock>,
}

#[async_trait]
impl MetricsSource for BusyCluster {
    async fn instant(&self, _: Signal) -> Reading {
        Reading::Known {
            value: 90.0,
            at: self.clock.now(),
        }
    }
    async fn node_cpu(&self) -> PortResult<BTreeMap<String, f64>> {
        Ok(BTreeMap::new())
    }
    async fn range(
        &self,
        _: Signal,
        _: Timestamp,
        _: Timestamp,
        _: Duration,
    ) -> PortResult<Vec<Sample>> {
        Ok(vec![])
    }
}

#[async_trait]
impl ClusterApi for BusyCluster {
    async fn nodes(&self) -> PortResult<Vec<Node>> {
        Ok((0..5)
            .map(|i| Node {
                name: format!("w{i}"),
                instance_id: Some(format!("i-static{i}")),
                ready: true,
                cordoned: false,
                startup_taint: false,
                allocatable: Resources::new(1_900, 7 << 30),
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
                created: Timestamp(0),
                ready_since: Timestamp(0),
            })
            .collect())
    }
    async fn pods(&self) -> PortResult<Vec<Pod>> {
        Ok(vec![])
    }
    async fn pods_on(&self, _: &str) -> PortResult<Vec<Pod>> {
        Ok(vec![])
    }
    async fn pdbs(&self) -> PortResult<Vec<Pdb>> {
        Ok(vec![])
    }
    async fn set_cordoned(&self, _: &str, _: bool) -> PortResult<()> {
        Ok(())
    }
    async fn remove_startup_taint(&self, _: &str) -> PortResult<()> {
        Ok(())
    }
    async fn evict(&self, _: &PodRef) -> PortResult<EvictionOutcome> {
        Ok(EvictionOutcome::Evicted)
    }
    async fn delete_node(&self, _: &str) -> PortResult<()> {
        Ok(())
    }
    async fn server_version(&self) -> PortResult<String> {
        Ok("v1.33.1+k3s1".into())
    }
    async fn create_event(&self, _: &ClusterEvent) -> PortResult<()> {
        Ok(())
    }
    async fn bump_event(&self, _: &str, _: &str, _: EventSeries) -> PortResult<bool> {
        Ok(true)
    }
    async fn node_of_instance(&self, id: &str) -> PortResult<Option<String>> {
        let nodes = self.nodes().await?;
        Ok(nodes
            .into_iter()
            .find(|n| n.instance_id.as_deref() == Some(id))
            .map(|n| n.name))
    }
}

async fn engine(cluster: &str, table: &str, n: usize, master_tag: &str, peers: &Peers) -> Executor {
    // Its own SDK configs, hence its own clients and connection pools.
    let sdk = support::sdk_at(&peers.ec2.url).await;
    let store_sdk = support::sdk_at(&peers.dynamodb.url).await;
    let mut config = support::moto_config(cluster, table);
    config.ec2.master_tag = master_tag.to_string();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let busy = Arc::new(BusyCluster {
        clock: clock.clone(),
    });
    let ports = Ports {
        metrics: busy.clone(),
        cluster: busy,
        cloud: Arc::new(Ec2Fleet::new(
            &sdk,
            cluster,
            &config.ec2,
            DEFAULT_TEMPLATE.into(),
        )),
        state: Arc::new(DynamoStateStore::new(&store_sdk, table, cluster)),
        clock: clock.clone(),
    };
    let settings = engine_settings(&config);
    let ids = Arc::new(IdSource::random());
    let lock = LockClient::new(
        ports.state.clone(),
        clock,
        settings.lease.clone(),
        format!("engine-{n}:{}", ids.uuid()),
        ids.clone(),
    );
    Executor::new(ports, settings, lock, ids)
}

/// Checking proxies in front of DynamoDB Local and moto.
struct Peers {
    dynamodb: support::proxy::CountingProxy,
    ec2: support::proxy::CountingProxy,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_engines_twenty_rounds_zero_double_launches() {
    let peers = Peers {
        dynamodb: support::proxy::CountingProxy::start(&support::dynamodb_url()).await,
        ec2: support::proxy::CountingProxy::start(&support::moto_url()).await,
    };
    let sdk = support::moto_sdk().await;
    let store_sdk = support::dynamodb_sdk().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let mut tally = Vec::new();
    let mut contended = 0;
    for round in 0..20 {
        let cluster = support::unique(&format!("race{round}"));
        let table = support::unique(&format!("race{round}"));
        DynamoStateStore::new(&store_sdk, &table, &cluster)
            .create_table()
            .await
            .unwrap();
        let master_tag = format!("k3s-autoscaler/master={cluster}");
        run_master(&ec2, &cluster).await;

        let mut engines = Vec::new();
        for n in 0..8 {
            engines.push(engine(&cluster, &table, n, &master_tag, &peers).await);
        }
        let barrier = Arc::new(tokio::sync::Barrier::new(engines.len()));
        let mut tasks = Vec::new();
        for executor in engines {
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                executor
                    .run(
                        Some(StartRequest::Engine {
                            memory: PolicyMemory::default(),
                        }),
                        &Shutdown::new(),
                    )
                    .await
            }));
        }
        let mut started = Vec::new();
        let mut busy = 0;
        for task in tasks {
            let report = task.await.unwrap();
            busy += usize::from(report.busy_holder.is_some() || !report.lock_taken);
            if let Some(id) = report.started {
                started.push(id);
            }
        }
        contended += usize::from(busy > 0);
        // Count what EC2 says, not what the engines say.
        let out = ec2
            .describe_instances()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("tag:k3s-autoscaler/cluster")
                    .values(&cluster)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let instances: Vec<_> = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .collect();
        let op_ids: BTreeSet<String> = instances
            .iter()
            .filter_map(|i| {
                i.tags()
                    .iter()
                    .find(|t| t.key() == Some("k3s-autoscaler/op-id"))
            })
            .filter_map(|t| t.value().map(String::from))
            .collect();
        let state = DynamoStateStore::new(&store_sdk, &table, &cluster)
            .read()
            .await
            .unwrap();
        let op = state.record.op.expect("one operation recorded");
        let OpKind::ScaleUp { count, .. } = op.kind else {
            panic!("not a scale-up: {:?}", op.kind)
        };
        tally.push((round, started.len(), op_ids.len(), instances.len(), count));
        assert_eq!(
            started,
            vec![op.id.clone()],
            "round {round}: exactly one engine starts the operation"
        );
        assert_eq!(
            op_ids,
            BTreeSet::from([op.id.clone()]),
            "round {round}: one op id on the instances"
        );
        assert_eq!(
            instances.len(),
            count as usize,
            "round {round}: double launch"
        );
    }
    println!("rounds with lock contention: {contended}");
    // Engines that ran one after another would never find the lock taken:
    // the race must really be a race for the counts above to mean anything.
    assert!(
        contended >= 10,
        "only {contended} of 20 rounds saw an engine find the lock held"
    );
    let refused: Vec<String> = peers
        .dynamodb
        .violations()
        .into_iter()
        .chain(peers.ec2.violations())
        .collect();
    assert!(
        refused.is_empty(),
        "requests the real services refuse:\n{}",
        refused.join("\n")
    );
    let writes = peers
        .dynamodb
        .calls()
        .iter()
        .filter(|c| c.as_str() == "dynamodb:TransactWriteItems")
        .count();
    assert!(
        writes >= 20 * 3,
        "operation writes reached DynamoDB Local: {writes}"
    );
    println!(
        "rounds: {}, engines per round: 8, operations started per round: {:?}, instances launched per round: {:?}, double launches: 0 (asserted per round)",
        tally.len(),
        tally.iter().map(|t| t.1).collect::<Vec<_>>(),
        tally.iter().map(|t| t.3).collect::<Vec<_>>()
    );
}

async fn run_master(ec2: &aws_sdk_ec2::Client, cluster: &str) {
    use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
    ec2.run_instances()
        .image_id(support::MOTO_AMI)
        .min_count(1)
        .max_count(1)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(
                    Tag::builder()
                        .key("k3s-autoscaler/master")
                        .value(cluster)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// The sequence a retry used to get wrong: the first instance type has no
/// capacity, the second launches, its answer is lost (and EC2 does not
/// list the new instances yet), capacity for the first comes back, the
/// engine tries again next tick. The
/// recorded plan re-sends exactly that attempt with its token, EC2 answers
/// with the first launch, and exactly `count` instances of the second type
/// exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_fallback_then_a_lost_answer_launches_once() {
    let strict = support::strict_ec2::StrictEc2::start(&support::moto_url()).await;
    let store_proxy = support::proxy::CountingProxy::start(&support::dynamodb_url()).await;
    let peers = Peers {
        dynamodb: store_proxy,
        ec2: support::proxy::CountingProxy::start(&strict.url).await,
    };
    let sdk = support::moto_sdk().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let cluster = support::unique("fallback");
    let table = support::unique("fallback");
    DynamoStateStore::new(&support::dynamodb_sdk().await, &table, &cluster)
        .create_table()
        .await
        .unwrap();
    run_master(&ec2, &cluster).await;
    let master_tag = format!("k3s-autoscaler/master={cluster}");
    strict.refuse_type("t3.large", "InsufficientInstanceCapacity");
    strict.invisible_for(Duration::from_secs(60));
    // Every try of the SDK's own retry loses its answer too.
    strict.lose_next_answers(3);
    let executor = engine(&cluster, &table, 0, &master_tag, &peers).await;
    let start = || {
        Some(StartRequest::Engine {
            memory: PolicyMemory::default(),
        })
    };
    let first = executor.run(start(), &Shutdown::new()).await;
    assert!(first.started.is_some(), "{first:?}");
    assert!(
        first
            .stopped
            .as_deref()
            .is_some_and(|s| s.contains("launch not confirmed")),
        "{first:?}"
    );
    // The next tick: nothing listed yet, and the first type has capacity
    // again. A retry that started over from the first type would launch a
    // second batch; the plan sends the same attempt again.
    strict.clear_refusals();
    let second = executor.run(start(), &Shutdown::new()).await;
    assert_eq!(second.error, None, "{second:?}");
    let state = DynamoStateStore::new(&support::dynamodb_sdk().await, &table, &cluster)
        .read()
        .await
        .unwrap();
    let op = state.record.op.expect("the operation");
    let OpKind::ScaleUp {
        count,
        instance_ids,
        plan: Some(plan),
        ..
    } = &op.kind
    else {
        panic!("{:?}", op.kind)
    };
    assert!(
        matches!(op.phase, OpPhase::Launched | OpPhase::Verifying),
        "{:?}: {:?}",
        op.phase,
        op.steps
    );
    assert_eq!(plan.attempt, 1, "{plan:?}");
    assert!(
        plan.refusals[0].starts_with("t3.large: InsufficientInstanceCapacity"),
        "{plan:?}"
    );
    assert_eq!(strict.launches(), 1, "one RunInstances launched anything");
    assert_eq!(instance_ids.len(), *count as usize);
    let out = ec2
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:k3s-autoscaler/op-id")
                .values(&op.id)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let launched: Vec<_> = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .collect();
    assert_eq!(launched.len(), *count as usize, "a second launch happened");
    assert!(
        launched
            .iter()
            .all(|i| i.instance_type().map(|t| t.as_str()) == Some("t3a.large")),
        "{launched:?}"
    );
    let mut recorded = instance_ids.clone();
    recorded.sort();
    let mut found: Vec<String> = launched
        .iter()
        .filter_map(|i| i.instance_id().map(String::from))
        .collect();
    found.sort();
    assert_eq!(recorded, found);
    let refused: Vec<String> = peers
        .dynamodb
        .violations()
        .into_iter()
        .chain(strict.violations())
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
}
