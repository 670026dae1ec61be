//! The `ClusterApi` conformance suite, written once against the trait and
//! run against the simulator and against the kube-rs adapter talking to
//! the simulator's Kubernetes façade over plain HTTP on loopback. What only
//! the façade can show (the API server's own rules) is in
//! `facade_fidelity.rs` and `facade_evictions.rs`.

use crate::support;

use k3s_autoscaler::adapters::SystemClock;
use k3s_autoscaler::ports::*;
use k3s_autoscaler::sim::ports::SimPorts;
use k3s_autoscaler::sim::{ScenarioKind, SimClock, World};
use std::sync::Arc;

type Cluster = Arc<dyn ClusterApi>;

mod cases {
    use super::*;

    pub async fn workers_carry_readiness_allocatable_and_instance_ids(c: Cluster) {
        let nodes = c.nodes().await.unwrap();
        assert_eq!(nodes.len(), 4, "{nodes:?}");
        for n in &nodes {
            assert!(n.ready, "{n:?}");
            assert!(!n.cordoned);
            assert!(
                n.allocatable.cpu_millis >= 1_000 && n.allocatable.memory_bytes >= 1 << 30,
                "{n:?}"
            );
            assert_eq!(n.instance_id.as_deref(), Some(n.name.as_str()));
            assert!(n.zone().is_some() && n.instance_type().is_some(), "{n:?}");
        }
    }

    pub async fn pods_carry_owner_requests_and_placement(c: Cluster) {
        let nodes = c.nodes().await.unwrap();
        let pods = c.pods().await.unwrap();
        for n in &nodes {
            let on = c.pods_on(&n.name).await.unwrap();
            assert!(
                on.iter()
                    .all(|p| p.node_name.as_deref() == Some(n.name.as_str()))
            );
            assert!(
                on.iter()
                    .any(|p| p.owner_kind.as_deref() == Some("DaemonSet")),
                "every node runs the DaemonSet: {on:?}"
            );
            let from_all: usize = pods
                .iter()
                .filter(|p| p.node_name.as_deref() == Some(n.name.as_str()))
                .count();
            assert_eq!(from_all, on.len(), "pods_on agrees with pods");
        }
        let web = pods
            .iter()
            .find(|p| p.name.starts_with("web-"))
            .expect("web pods");
        assert_eq!(web.owner_kind.as_deref(), Some("ReplicaSet"));
        assert_eq!(web.requests, Resources::new(300, 512 << 20));
        assert_eq!(web.labels.get("app").map(String::as_str), Some("web"));
        assert!(
            pods.iter()
                .any(|p| p.owner_kind.as_deref() == Some("StatefulSet")),
            "the db pod"
        );
        assert!(pods.iter().all(|p| !p.uid.is_empty()));
    }

    pub async fn budgets_are_listed_with_disruptions_allowed(c: Cluster) {
        let pdbs = c.pdbs().await.unwrap();
        let web = pdbs.iter().find(|p| p.name == "web").expect("the web PDB");
        assert_eq!(web.namespace, "default");
        assert_eq!(
            web.selector.match_labels.get("app").map(String::as_str),
            Some("web")
        );
        assert!(web.disruptions_allowed >= 0);
        assert!(
            pdbs.iter()
                .any(|p| p.namespace == "kube-system" && p.name == "coredns")
        );
    }

    pub async fn cordon_and_uncordon(c: Cluster) {
        let name = c.nodes().await.unwrap()[0].name.clone();
        c.set_cordoned(&name, true).await.unwrap();
        assert!(
            c.nodes()
                .await
                .unwrap()
                .iter()
                .find(|n| n.name == name)
                .unwrap()
                .cordoned
        );
        c.set_cordoned(&name, false).await.unwrap();
        assert!(
            !c.nodes()
                .await
                .unwrap()
                .iter()
                .find(|n| n.name == name)
                .unwrap()
                .cordoned
        );
        assert!(matches!(
            c.set_cordoned("no-such-node", true).await,
            Err(PortError::NotFound(_))
        ));
    }

    pub async fn eviction_honours_the_budget(c: Cluster) {
        let pods = c.pods().await.unwrap();
        let mut web: Vec<&Pod> = pods
            .iter()
            .filter(|p| {
                p.name.starts_with("web-") && p.phase == PodPhase::Running && !p.terminating
            })
            .collect();
        web.sort_by(|a, b| a.name.cmp(&b.name));
        assert!(web.len() >= 2);
        assert_eq!(
            c.evict(&web[0].reference()).await.unwrap(),
            EvictionOutcome::Evicted
        );
        // maxUnavailable 1: while the first is being replaced, the next is refused.
        match c.evict(&web[1].reference()).await.unwrap() {
            EvictionOutcome::Blocked(why) => assert!(why.contains("disruption budget"), "{why}"),
            other => panic!("expected a 429 refusal, got {other:?}"),
        }
        let after = c.pods().await.unwrap();
        assert!(
            after.iter().any(|p| p.uid == web[0].uid && p.terminating),
            "the evicted pod is terminating"
        );
        let gone = PodRef {
            namespace: "default".into(),
            name: "no-such-pod".into(),
            uid: "x".into(),
        };
        assert_eq!(c.evict(&gone).await.unwrap(), EvictionOutcome::AlreadyGone);
    }

    pub async fn deleting_a_node_object_is_idempotent(c: Cluster) {
        c.delete_node("no-such-node").await.unwrap();
        let before = c.nodes().await.unwrap();
        let name = before[0].name.clone();
        let instance = before[0].instance_id.clone().expect("an instance id");
        c.delete_node(&name).await.unwrap();
        let after = c.nodes().await.unwrap();
        assert!(
            after.iter().all(|n| n.name != name),
            "{name} is still listed"
        );
        assert_eq!(after.len(), before.len() - 1);
        assert_eq!(c.node_of_instance(&instance).await.unwrap(), None);
        // Deleting it again is fine too, and changes nothing more. (The
        // clock stands still: a live instance's kubelet would re-register
        // its node later, on the façade as on a real cluster.)
        c.delete_node(&name).await.unwrap();
        assert_eq!(c.nodes().await.unwrap().len(), before.len() - 1);
    }

    /// The look-up that confirms "never joined" ignores the selector and
    /// finds a node by its instance; the release new workers pin is the
    /// server's.
    pub async fn a_node_is_found_by_instance_and_the_server_names_its_release(c: Cluster) {
        let nodes = c.nodes().await.unwrap();
        let node = &nodes[0];
        let id = node.instance_id.clone().expect("an instance id");
        assert_eq!(
            c.node_of_instance(&id).await.unwrap().as_deref(),
            Some(node.name.as_str())
        );
        assert_eq!(
            c.node_of_instance("i-0000000000nothere").await.unwrap(),
            None
        );
        assert_eq!(c.server_version().await.unwrap(), "v1.33.1+k3s1");
    }

    /// An event is created once under its name, its series bumped after,
    /// and a bump of an event the server no longer has says so.
    pub async fn an_event_is_created_once_and_bumped_after(c: Cluster) {
        let at = Timestamp::from_millis(SystemClock::new().now().as_millis());
        let event = ClusterEvent {
            name: "w-conformance.18a2b".into(),
            regarding: EventObject::node("w-conformance"),
            reason: "ScaleDown".into(),
            action: "ScaleDown".into(),
            note: "scale-down op-1: cordon, drain and terminate this node".into(),
            event_type: EventType::Normal,
            at,
            instance: "conformance".into(),
            series: None,
        };
        c.create_event(&event).await.unwrap();
        assert!(
            c.create_event(&event).await.is_err(),
            "a second create of one name conflicts"
        );
        let series = EventSeries {
            count: 2,
            last_observed: at,
        };
        assert!(c.bump_event("default", &event.name, series).await.unwrap());
        assert!(
            !c.bump_event("default", "w-nothere.1", series)
                .await
                .unwrap(),
            "no such event"
        );
    }

    pub async fn unschedulable_pods_say_since_when(c: Cluster) {
        let pods = c.pods().await.unwrap();
        let pending: Vec<&Pod> = pods.iter().filter(|p| p.is_unschedulable()).collect();
        assert!(
            !pending.is_empty(),
            "the busy scenario leaves pods pending on four workers"
        );
        for p in pending {
            assert!(p.node_name.is_none());
            // A time of this run's world (it started at the wall clock's
            // now, on a clock that has moved ten seconds since).
            let now = SystemClock::new().now();
            assert!(
                p.unschedulable_since
                    .is_some_and(|t| t.0 > 0 && now.since(t) < std::time::Duration::from_secs(60)),
                "{p:?}"
            );
        }
    }
}

/// One world for both sides (symmetric fixtures): four Ready
/// workers on a manual clock, so nothing moves between a case's calls on
/// either side; `busy` pushes demand past what four workers hold.
fn world(busy: bool) -> (Arc<std::sync::Mutex<World>>, Arc<SimClock>) {
    let start = SystemClock::new().now();
    let scenario = if busy {
        ScenarioKind::Idle
    } else {
        ScenarioKind::Steady
    };
    let world = support::facade_world(scenario, 4, start);
    if busy {
        let mut w = k3s_autoscaler::sim::ports::lock(&world);
        for c in w
            .workload
            .controllers
            .iter_mut()
            .filter(|c| c.name == "web")
        {
            c.replicas = k3s_autoscaler::sim::workload::Replicas::Fixed(40);
        }
    }
    let clock = Arc::new(SimClock::manual(start));
    // Let the pods start: ten simulated seconds, at once.
    clock.advance(std::time::Duration::from_secs(10));
    k3s_autoscaler::sim::ports::lock(&world).advance_to(clock.now());
    (world, clock)
}

async fn sim(busy: bool) -> Cluster {
    let (world, clock) = world(busy);
    Arc::new(SimPorts::new(world, clock, false))
}

async fn kube(busy: bool) -> Cluster {
    let (world, clock) = world(busy);
    let url = support::serve_facade(world, clock).await;
    Arc::new(support::kube_client(&url).await)
}

async fn with_sim(case: impl AsyncFnOnce(Cluster), busy: bool) {
    case(sim(busy).await).await
}

async fn with_kube(case: impl AsyncFnOnce(Cluster), busy: bool) {
    case(kube(busy).await).await
}

// `: true`: the case runs on the busy world.
conformance! {
    backends { on_simulator => with_sim, on_kube_rs_and_the_facade => with_kube }
    cases {
        workers_carry_readiness_allocatable_and_instance_ids,
        pods_carry_owner_requests_and_placement,
        budgets_are_listed_with_disruptions_allowed,
        cordon_and_uncordon,
        eviction_honours_the_budget,
        deleting_a_node_object_is_idempotent,
        a_node_is_found_by_instance_and_the_server_names_its_release,
        an_event_is_created_once_and_bumped_after,
        unschedulable_pods_say_since_when: true,
    }
}
