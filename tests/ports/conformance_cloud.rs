//! The `CloudApi` conformance suite, written once against the trait and run
//! against the simulator and against the EC2 adapter on moto's server.
//! What only the EC2 adapter can show is in `ec2_adapter_on_moto.rs`.

use crate::support;

use async_trait::async_trait;
use k3s_autoscaler::adapters::ec2::Ec2Fleet;
use k3s_autoscaler::adapters::user_data::DEFAULT_TEMPLATE;
use k3s_autoscaler::ports::*;
use k3s_autoscaler::sim::ScenarioKind;
use std::collections::BTreeSet;
use std::sync::Arc;

/// What a case needs besides the port: instances that are not ours.
#[async_trait]
trait Fixture: Send + Sync {
    fn cloud(&self) -> Arc<dyn CloudApi>;
    /// An instance with no managed tags.
    async fn add_unmanaged(&self) -> String;
    /// An instance of another cluster (managed tags, other cluster name).
    async fn add_other_cluster(&self) -> String;
    /// The K3s server's id.
    async fn master_id(&self) -> String;
    async fn is_live(&self, id: &str) -> bool;
    /// Let a launched instance boot far enough to have console output.
    async fn let_boot(&self);
}

pub(crate) fn launch_request(op: &str, count: u32) -> LaunchRequest {
    LaunchRequest {
        op_id: op.into(),
        client_token: format!("k3sa-{op}-0"),
        count,
        instance_type: "t3.large".into(),
        subnet: None,
        master_address: "10.0.0.5".into(),
        k3s_version: "v1.33.1+k3s1".into(),
    }
}

pub(crate) fn ids(instances: &[Instance]) -> BTreeSet<String> {
    instances.iter().map(|i| i.id.clone()).collect()
}

mod cases {
    use super::*;

    pub async fn launching_twice_for_one_op_returns_the_same_instances(f: Box<dyn Fixture>) {
        let cloud = f.cloud();
        let before = ids(&cloud.managed_instances().await.unwrap());
        let first = cloud.launch(&launch_request("op-1", 2)).await.unwrap();
        assert_eq!(first.len(), 2);
        assert!(
            first
                .iter()
                .all(|i| i.managed && i.op_id.as_deref() == Some("op-1")),
            "{first:?}"
        );
        let again = cloud.launch(&launch_request("op-1", 2)).await.unwrap();
        assert_eq!(ids(&again), ids(&first), "a retry must not launch twice");
        assert_eq!(
            ids(&cloud.instances_for_op("op-1").await.unwrap()),
            ids(&first)
        );
        let after = ids(&cloud.managed_instances().await.unwrap());
        assert_eq!(
            after.difference(&before).cloned().collect::<BTreeSet<_>>(),
            ids(&first)
        );
        // Another op launches its own.
        let other = cloud.launch(&launch_request("op-2", 1)).await.unwrap();
        assert!(ids(&other).is_disjoint(&ids(&first)));
    }

    /// EC2's idempotency: the token names one launch. Sent again with
    /// other parameters (another type here; another subnet is another zone)
    /// it is refused, and nothing more is launched.
    pub async fn a_token_reused_with_other_parameters_is_refused(f: Box<dyn Fixture>) {
        let cloud = f.cloud();
        let first = cloud.launch(&launch_request("op-5", 1)).await.unwrap();
        let mut other = launch_request("op-5", 1);
        other.instance_type = "m5.large".into();
        let refused = cloud.launch(&other).await.unwrap_err();
        assert!(matches!(refused, PortError::TokenReused(_)), "{refused}");
        assert_eq!(
            ids(&cloud.instances_for_op("op-5").await.unwrap()),
            ids(&first),
            "nothing more was launched"
        );
    }

    pub async fn only_live_managed_workers_of_this_cluster_are_listed(f: Box<dyn Fixture>) {
        let cloud = f.cloud();
        let unmanaged = f.add_unmanaged().await;
        let foreign = f.add_other_cluster().await;
        let master = f.master_id().await;
        let mine = cloud.launch(&launch_request("op-3", 2)).await.unwrap();
        let listed = ids(&cloud.managed_instances().await.unwrap());
        for other in [&unmanaged, &foreign, &master] {
            assert!(!listed.contains(other), "{other} is not a managed worker");
        }
        assert!(ids(&mine).is_subset(&listed));
        cloud.terminate(&[mine[0].id.clone()]).await.unwrap();
        let listed = ids(&cloud.managed_instances().await.unwrap());
        assert!(
            !listed.contains(&mine[0].id),
            "a terminated worker is not live"
        );
        assert!(listed.contains(&mine[1].id));
    }

    pub async fn terminate_refuses_anything_unmanaged_before_any_change(f: Box<dyn Fixture>) {
        let cloud = f.cloud();
        let mine = cloud.launch(&launch_request("op-4", 1)).await.unwrap();
        for other in [
            f.add_unmanaged().await,
            f.add_other_cluster().await,
            f.master_id().await,
        ] {
            let refused = cloud
                .terminate(&[mine[0].id.clone(), other.clone()])
                .await
                .unwrap_err();
            assert!(matches!(refused, PortError::Refused(_)), "{refused}");
            assert!(f.is_live(&other).await, "{other} was touched");
            assert!(
                f.is_live(&mine[0].id).await,
                "the managed one was terminated despite the refusal"
            );
        }
        let missing = cloud
            .terminate(&["i-0000000000000dead".to_string()])
            .await
            .unwrap_err();
        assert!(matches!(missing, PortError::NotFound(_)), "{missing}");
    }

    /// What a destructive step asks before it treats an instance as gone:
    /// by id, in any state, whatever its tags; an id the cloud does not
    /// know is `None`, not an error.
    pub async fn an_instance_is_found_by_id_in_any_state(f: Box<dyn Fixture>) {
        let cloud = f.cloud();
        let mine = cloud.launch(&launch_request("op-6", 1)).await.unwrap();
        let id = mine[0].id.clone();
        let found = cloud.instance(&id).await.unwrap().expect("launched");
        assert!(found.managed && found.state.is_live(), "{found:?}");
        let unmanaged = f.add_unmanaged().await;
        let other = cloud.instance(&unmanaged).await.unwrap().expect("exists");
        assert!(!other.managed, "{other:?}");
        cloud.terminate(std::slice::from_ref(&id)).await.unwrap();
        let gone = cloud.instance(&id).await.unwrap().expect("still described");
        assert!(
            matches!(
                gone.state,
                InstanceState::ShuttingDown | InstanceState::Terminated
            ),
            "{gone:?}"
        );
        assert_eq!(cloud.instance("i-0000000000000dead").await.unwrap(), None);
    }

    /// GetConsoleOutput: once the instance has booted, the answer is the
    /// boot log as text (decoded from EC2's base64: moto answers a fixed
    /// "Linux version 2.6.16-xenU" log, the simulator its own), and an
    /// unknown instance is an error, not text.
    pub async fn the_console_output_of_an_instance_is_decoded_text(f: Box<dyn Fixture>) {
        let cloud = f.cloud();
        let launched = cloud
            .launch(&launch_request("op-console", 1))
            .await
            .unwrap();
        f.let_boot().await;
        let text = cloud
            .console_output(&launched[0].id)
            .await
            .unwrap()
            .expect("console output once booted");
        assert!(text.contains("Linux version"), "not a boot log: {text:.80}");
        assert!(
            !text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '='),
            "still base64: {text:.80}"
        );
        assert!(cloud.console_output("i-0000000000000dead").await.is_err());
    }

    pub async fn the_master_is_found_by_its_tag(f: Box<dyn Fixture>) {
        let master = f.cloud().master().await.unwrap().expect("a master");
        assert_eq!(master.id, f.master_id().await);
        assert!(!master.managed);
        assert!(master.private_ip.is_some());
    }
}

struct SimFixture {
    demo: k3s_autoscaler::harness::demo::Demo,
}

#[async_trait]
impl Fixture for SimFixture {
    fn cloud(&self) -> Arc<dyn CloudApi> {
        self.demo.ports.cloud.clone()
    }
    async fn add_unmanaged(&self) -> String {
        k3s_autoscaler::sim::ports::lock(&self.demo.world).add_foreign_instance()
    }
    async fn add_other_cluster(&self) -> String {
        // The simulator has one cluster: another cluster's worker is, to
        // it, simply not managed.
        self.add_unmanaged().await
    }
    async fn master_id(&self) -> String {
        self.demo.ports.cloud.master().await.unwrap().unwrap().id
    }
    async fn let_boot(&self) {
        // EC2 publishes console output late; the simulator after 30 s.
        self.demo.clock.advance(std::time::Duration::from_secs(60));
    }
    async fn is_live(&self, id: &str) -> bool {
        let world = k3s_autoscaler::sim::ports::lock(&self.demo.world);
        world
            .fleet
            .instances
            .get(id)
            .is_some_and(|i| i.state.is_live())
    }
}

pub(crate) struct MotoFixture {
    pub(crate) fleet: Arc<Ec2Fleet>,
    pub(crate) ec2: aws_sdk_ec2::Client,
    pub(crate) cluster: String,
    pub(crate) master: String,
    /// moto behind the proxy that answers like EC2 (ClientToken, capacity).
    pub(crate) strict: support::strict_ec2::StrictEc2,
}

impl Drop for MotoFixture {
    fn drop(&mut self) {
        let refused = self.strict.violations();
        if !std::thread::panicking() {
            assert!(
                refused.is_empty(),
                "requests EC2 refuses:\n{}",
                refused.join("\n")
            );
        }
    }
}

impl MotoFixture {
    pub(crate) async fn new() -> Self {
        let strict = support::strict_ec2::StrictEc2::start(&support::moto_url()).await;
        let sdk = support::sdk_at(&strict.url).await;
        let cluster = support::unique("conf-cloud");
        let mut config = support::moto_config(&cluster, "unused");
        // A master tag of our own, so parallel tests never see each other's.
        config.ec2.master_tag = format!("k3s-autoscaler/master={cluster}");
        let ec2 = aws_sdk_ec2::Client::new(&sdk);
        let master = run(&ec2, &[("k3s-autoscaler/master", &cluster)]).await;
        MotoFixture {
            fleet: Arc::new(Ec2Fleet::new(
                &sdk,
                &cluster,
                &config.ec2,
                DEFAULT_TEMPLATE.into(),
            )),
            ec2,
            cluster,
            master,
            strict,
        }
    }
}

async fn run(ec2: &aws_sdk_ec2::Client, tags: &[(&str, &str)]) -> String {
    use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
    let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
    for (k, v) in tags {
        spec = spec.tags(Tag::builder().key(*k).value(*v).build());
    }
    let out = ec2
        .run_instances()
        .image_id(support::MOTO_AMI)
        .min_count(1)
        .max_count(1)
        .tag_specifications(spec.build())
        .send()
        .await
        .unwrap();
    out.instances()[0].instance_id().unwrap().to_string()
}

#[async_trait]
impl Fixture for MotoFixture {
    fn cloud(&self) -> Arc<dyn CloudApi> {
        self.fleet.clone()
    }
    async fn add_unmanaged(&self) -> String {
        run(&self.ec2, &[("Name", "not-ours")]).await
    }
    async fn add_other_cluster(&self) -> String {
        let other = format!("{}-other", self.cluster);
        run(
            &self.ec2,
            &[
                ("k3s-autoscaler/cluster", &other),
                ("k3s-autoscaler/role", "worker"),
            ],
        )
        .await
    }
    async fn master_id(&self) -> String {
        self.master.clone()
    }
    async fn let_boot(&self) {
        // moto has console output for an instance at once.
    }
    async fn is_live(&self, id: &str) -> bool {
        let out = self
            .ec2
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .unwrap();
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .any(|i| {
                matches!(
                    i.state().and_then(|s| s.name()).map(|n| n.as_str()),
                    Some("pending" | "running")
                )
            })
    }
}

async fn sim() -> Box<dyn Fixture> {
    let (_, demo) = support::demo(ScenarioKind::Steady, 1, false);
    Box::new(SimFixture { demo })
}

async fn moto() -> Box<dyn Fixture> {
    Box::new(MotoFixture::new().await)
}

async fn with_sim(case: impl AsyncFnOnce(Box<dyn Fixture>), _: ()) {
    case(sim().await).await
}

async fn with_moto(case: impl AsyncFnOnce(Box<dyn Fixture>), _: ()) {
    case(moto().await).await
}

conformance! {
    backends { on_simulator => with_sim, on_ec2_moto => with_moto }
    cases {
        launching_twice_for_one_op_returns_the_same_instances,
        only_live_managed_workers_of_this_cluster_are_listed,
        terminate_refuses_anything_unmanaged_before_any_change,
        the_master_is_found_by_its_tag,
        a_token_reused_with_other_parameters_is_refused,
        an_instance_is_found_by_id_in_any_state,
        the_console_output_of_an_instance_is_decoded_text,
    }
}
