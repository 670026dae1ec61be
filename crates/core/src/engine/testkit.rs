//! Builders for engine tests: small worlds described in a line.

use super::observation::{ClusterView, Observation};
use crate::ports::cluster::{LabelSelector, Pdb};
use crate::ports::{
    Instance, InstanceState, Node, Pod, PodFields, PodPhase, Reading, Resources, Timestamp,
};
use std::collections::BTreeMap;

pub const T0: Timestamp = Timestamp(1_767_571_200_000);

pub fn at(secs: i64) -> Timestamp {
    Timestamp(T0.0 + secs * 1000)
}

pub fn node(name: &str, created_secs: i64) -> Node {
    Node {
        name: name.into(),
        instance_id: Some(name.into()),
        ready: true,
        cordoned: false,
        startup_taint: false,
        allocatable: Resources::new(1_900, 7 << 30),
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        created: at(created_secs),
        ready_since: at(created_secs),
    }
}

pub fn instance(id: &str) -> Instance {
    Instance {
        id: id.into(),
        state: InstanceState::Running,
        instance_type: "t3.large".into(),
        zone: "eu-west-1a".into(),
        private_ip: None,
        subnet: None,
        launched_at: T0,
        op_id: None,
        managed: true,
    }
}

pub fn pod(name: &str, node: Option<&str>, cpu: u64, owner: Option<&str>) -> Pod {
    PodFields {
        namespace: "default".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        node_name: node.map(String::from),
        phase: if node.is_some() {
            PodPhase::Running
        } else {
            PodPhase::Pending
        },
        owner_kind: owner.map(String::from),
        labels: [("app".into(), "web".into())].into(),
        annotations: Default::default(),
        priority_class: None,
        volumes: vec![],
        requests: Resources::new(cpu, 256 << 20),
        unschedulable_since: None,
        terminating: false,
        node_selector: Default::default(),
        scheduling_gates: Vec::new(),
    }
    .into()
}

pub fn pending_pod(name: &str, cpu: u64, since: Timestamp) -> Pod {
    let mut p = pod(name, None, cpu, Some("ReplicaSet"));
    p.unschedulable_since = Some(since);
    p
}

pub fn web_pdb(allowed: i32) -> Pdb {
    Pdb {
        namespace: "default".into(),
        name: "web".into(),
        selector: LabelSelector {
            match_labels: BTreeMap::from([("app".into(), "web".into())]),
            match_expressions: vec![],
        },
        disruptions_allowed: allowed,
    }
}

/// `n` Ready workers `w1..wn` (created 1 h apart, newest last), each with
/// a DaemonSet pod and two 300m web pods; CPU at `cpu` %, measured `now`.
pub fn cluster(n: usize, cpu: f64, now: Timestamp) -> Observation {
    let mut view = ClusterView::default();
    let mut fleet = Vec::new();
    for i in 1..=n {
        let name = format!("w{i}");
        view.nodes.push(node(&name, (i as i64) * 3600 - 100_000));
        fleet.push(instance(&name));
        view.pods
            .push(pod(&format!("ds-{i}"), Some(&name), 100, Some("DaemonSet")));
        view.pods.push(pod(
            &format!("web-{i}a"),
            Some(&name),
            300,
            Some("ReplicaSet"),
        ));
        view.pods.push(pod(
            &format!("web-{i}b"),
            Some(&name),
            300,
            Some("ReplicaSet"),
        ));
    }
    view.pdbs.push(web_pdb(1));
    Observation {
        cpu_partial: None,
        at: now,
        cpu: Reading::Known {
            value: cpu,
            at: now,
        },
        cluster: Ok(view),
        fleet: Ok(fleet),
    }
}

pub fn view_mut(obs: &mut Observation) -> &mut ClusterView {
    obs.cluster
        .as_mut()
        .expect("test observation has a cluster view")
}
