//! Worlds of a given size for the benchmarks: N Ready workers with the
//! demo's pod mix, the instances behind them, and 24 h of chart history.
#![allow(dead_code)]

use k3s_autoscaler::engine::{ClusterView, Observation};
use k3s_autoscaler::ports::cluster::{LABEL_INSTANCE_TYPE, LABEL_ZONE, LabelSelector};
use k3s_autoscaler::ports::{
    Instance, InstanceState, Node, Pdb, Pod, PodFields, PodPhase, Reading, Resources, Timestamp,
};
use std::collections::BTreeMap;

pub const NOW: Timestamp = Timestamp(1_767_600_000_000);

pub fn observation(workers: usize) -> Observation {
    let mut view = ClusterView::default();
    let mut fleet = Vec::new();
    let pod = |name: String, node: Option<&str>, cpu: u64, owner: &str, app: &str| -> Pod {
        PodFields {
            namespace: "default".into(),
            uid: format!("uid-{name}"),
            name,
            node_name: node.map(String::from),
            phase: if node.is_some() {
                PodPhase::Running
            } else {
                PodPhase::Pending
            },
            owner_kind: Some(owner.into()),
            labels: [("app".to_string(), app.to_string())].into(),
            annotations: Default::default(),
            priority_class: None,
            volumes: vec![],
            requests: Resources::new(cpu, 512 << 20),
            unschedulable_since: None,
            terminating: false,
            node_selector: Default::default(),
            scheduling_gates: Vec::new(),
        }
        .into()
    };
    for i in 0..workers {
        let name = format!("i-{i:017x}");
        view.nodes.push(Node {
            name: name.clone(),
            instance_id: Some(name.clone()),
            ready: true,
            cordoned: false,
            startup_taint: false,
            allocatable: Resources::new(1_900, 7 << 30),
            labels: BTreeMap::from([
                (
                    LABEL_ZONE.to_string(),
                    ["eu-west-1a", "eu-west-1b", "eu-west-1c"][i % 3].to_string(),
                ),
                (LABEL_INSTANCE_TYPE.to_string(), "t3.large".to_string()),
            ]),
            annotations: BTreeMap::new(),
            created: Timestamp(NOW.0 - (i as i64) * 60_000),
            ready_since: Timestamp(NOW.0 - (i as i64) * 60_000),
        });
        fleet.push(Instance {
            id: name.clone(),
            state: InstanceState::Running,
            instance_type: "t3.large".into(),
            zone: "eu-west-1a".into(),
            private_ip: Some(format!("10.0.{}.{}", i / 250, i % 250)),
            subnet: None,
            launched_at: Timestamp(NOW.0 - (i as i64) * 60_000),
            op_id: None,
            managed: true,
        });
        view.pods.push(pod(
            format!("ds-{i}"),
            Some(&name),
            100,
            "DaemonSet",
            "node-exporter",
        ));
        for j in 0..5 {
            view.pods.push(pod(
                format!("web-{i}-{j}"),
                Some(&name),
                300,
                "ReplicaSet",
                "web",
            ));
        }
    }
    for j in 0..(workers / 20).max(1) {
        let mut p = pod(format!("web-pending-{j}"), None, 300, "ReplicaSet", "web");
        p.unschedulable_since = Some(Timestamp(NOW.0 - 240_000));
        view.pods.push(p);
    }
    view.pdbs.push(Pdb {
        namespace: "default".into(),
        name: "web".into(),
        selector: LabelSelector {
            match_labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
            match_expressions: vec![],
        },
        disruptions_allowed: 1,
    });
    Observation {
        cpu_partial: None,
        at: NOW,
        cpu: Reading::Known {
            value: 55.0,
            at: NOW,
        },
        cluster: Ok(view),
        fleet: Ok(fleet),
    }
}
