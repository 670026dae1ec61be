//! Simulated EC2 instances and the nodes they register as.

use super::rng::Rng;
use crate::ports::cloud::InstanceState;
use crate::ports::cluster::{LABEL_INSTANCE_TYPE, LABEL_ZONE};
use crate::ports::{Instance, Node, Resources, Timestamp};
use std::collections::BTreeMap;
use std::time::Duration;

pub const ZONES: [&str; 3] = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];
pub const INSTANCE_TYPE: &str = "t3.large";
/// What a simulated worker offers (a 2 vCPU, 8 GiB machine after kubelet reservations).
pub const NODE_ALLOCATABLE: Resources = Resources::new(1_900, 7 * 1024 * 1024 * 1024);
/// Raw CPU capacity, what node-exporter measures against.
pub const NODE_CAPACITY_MILLIS: f64 = 2_000.0;
/// A launched instance is Pending this long before it runs.
pub const PENDING_FOR: Duration = Duration::from_secs(10);
const SHUTTING_DOWN_FOR: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct SimInstance {
    pub id: String,
    pub state: InstanceState,
    pub state_since: Timestamp,
    pub zone: String,
    pub instance_type: String,
    pub launched_at: Timestamp,
    pub op_id: Option<String>,
    pub managed: bool,
    pub is_master: bool,
    /// When its kubelet registers a Ready node; `None`: never joins.
    pub join_at: Option<Timestamp>,
    pub private_ip: String,
    pub subnet: Option<String>,
}

impl SimInstance {
    /// What its serial console would show at `now`: nothing in the first
    /// half-minute (EC2 publishes the output late), then a boot log that
    /// ends with the agent joining, or failing to, as `join_at` says.
    pub fn console_text(&self, now: Timestamp, server: &str) -> Option<String> {
        let up = now.since(self.launched_at);
        if up < Duration::from_secs(30) {
            return None;
        }
        let mut lines = vec![
            format!(
                "[    0.000000] Linux version 6.1.0-28-cloud-amd64 ({})",
                self.id
            ),
            "[    4.210000] cloud-init[512]: Cloud-init v. 22.4.2 running 'modules:final'".into(),
            format!("[   12.800000] k3s-join: installing k3s agent, server https://{server}:6443"),
        ];
        match self.join_at {
            Some(at) if at <= now => {
                lines.push("[   31.400000] k3s[901]: Started Lightweight Kubernetes (agent).".into())
            }
            Some(_) => lines.push("[   20.100000] k3s[901]: Waiting to retrieve agent configuration; server is not ready".into()),
            None => {
                let tries = (up.as_secs() / 10).clamp(1, 5);
                for t in 0..tries {
                    lines.push(format!(
                        "[{:>12.6}] k3s[901]: level=error msg=\"failed to get CA certs: Get https://{server}:6443/cacerts: dial tcp {server}:6443: i/o timeout\"",
                        (20 + t * 10) as f64
                    ));
                }
            }
        }
        Some(lines.join("\n") + "\n")
    }

    pub fn to_domain(&self) -> Instance {
        Instance {
            id: self.id.clone(),
            state: self.state,
            instance_type: self.instance_type.clone(),
            zone: self.zone.clone(),
            private_ip: Some(self.private_ip.clone()),
            subnet: self.subnet.clone(),
            launched_at: self.launched_at,
            op_id: self.op_id.clone(),
            managed: self.managed,
        }
    }
}

#[derive(Clone, Debug)]
pub struct SimNode {
    pub name: String,
    pub instance_id: String,
    pub ready: bool,
    pub cordoned: bool,
    pub startup_taint: bool,
    pub created: Timestamp,
    /// When `ready` last changed (the Ready condition's transition time).
    pub ready_since: Timestamp,
    /// When the instance behind it stopped running (pods are reaped a
    /// while later); a flap does not set it.
    pub not_ready_since: Option<Timestamp>,
    /// Fault injection: NotReady until then, whatever the instance does.
    pub flapping_until: Option<Timestamp>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl SimNode {
    pub fn to_domain(&self) -> Node {
        Node {
            name: self.name.clone(),
            instance_id: Some(self.instance_id.clone()),
            ready: self.ready,
            cordoned: self.cordoned,
            startup_taint: self.startup_taint,
            allocatable: NODE_ALLOCATABLE,
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            created: self.created,
            ready_since: self.ready_since,
        }
    }

    /// Every change of `ready` goes through here, so the transition time
    /// the API server would show stays true.
    pub fn set_ready(&mut self, ready: bool, now: Timestamp) {
        if self.ready != ready {
            self.ready = ready;
            self.ready_since = now;
        }
    }
}

#[derive(Debug, Default)]
pub struct Fleet {
    pub instances: BTreeMap<String, SimInstance>,
    pub nodes: BTreeMap<String, SimNode>,
    next_ip: u32,
    /// Instances are EC2's (the staging façade): their states come from
    /// `sync_external`, not from this model.
    pub external: bool,
}

impl Fleet {
    pub fn new_instance_id(rng: &mut Rng) -> String {
        format!("i-0{:016x}", rng.next_u64())
    }

    /// The zone with the fewest live managed workers: EC2 subnets balanced.
    fn emptiest_zone(&self) -> &'static str {
        ZONES
            .iter()
            .min_by_key(|z| {
                self.instances
                    .values()
                    .filter(|i| i.managed && i.state.is_live() && i.zone == **z)
                    .count()
            })
            .copied()
            .unwrap_or(ZONES[0])
    }

    pub fn add_instance(
        &mut self,
        rng: &mut Rng,
        now: Timestamp,
        op_id: Option<String>,
        join_at: Option<Timestamp>,
        is_master: bool,
    ) -> String {
        let id = Self::new_instance_id(rng);
        self.next_ip += 1;
        let zone = self.emptiest_zone().to_string();
        self.instances.insert(
            id.clone(),
            SimInstance {
                id: id.clone(),
                state: InstanceState::Pending,
                state_since: now,
                zone,
                instance_type: INSTANCE_TYPE.into(),
                launched_at: now,
                op_id,
                managed: !is_master,
                is_master,
                join_at,
                private_ip: format!("10.0.{}.{}", self.next_ip / 250, 10 + self.next_ip % 250),
                subnet: None,
            },
        );
        id
    }

    /// Register the node of a running instance. Instances an operation
    /// launched come up with the startup taint (their user data asks for it).
    pub fn register_node(&mut self, instance_id: &str, now: Timestamp) {
        let Some(instance) = self.instances.get(instance_id) else {
            return;
        };
        let startup_taint = instance.op_id.is_some();
        let labels = BTreeMap::from([
            (LABEL_ZONE.to_string(), instance.zone.clone()),
            (
                LABEL_INSTANCE_TYPE.to_string(),
                instance.instance_type.clone(),
            ),
            ("k3s-autoscaler/role".to_string(), "worker".to_string()),
            ("kubernetes.io/hostname".to_string(), instance.id.clone()),
        ]);
        self.nodes.insert(
            instance_id.to_string(),
            SimNode {
                name: instance_id.to_string(),
                instance_id: instance_id.to_string(),
                ready: true,
                cordoned: false,
                startup_taint,
                created: now,
                ready_since: now,
                not_ready_since: None,
                flapping_until: None,
                labels,
                annotations: BTreeMap::new(),
            },
        );
    }

    /// Instance state machine and kubelet registration up to `now`.
    pub fn step(&mut self, now: Timestamp) {
        let mut joining = Vec::new();
        let external = self.external;
        for instance in self.instances.values_mut() {
            match instance.state {
                _ if external => {}
                InstanceState::Pending if now.since(instance.state_since) >= PENDING_FOR => {
                    instance.state = InstanceState::Running;
                    instance.state_since = now;
                }
                InstanceState::ShuttingDown
                    if now.since(instance.state_since) >= SHUTTING_DOWN_FOR =>
                {
                    instance.state = InstanceState::Terminated;
                    instance.state_since = now;
                }
                _ => {}
            }
            if instance.state == InstanceState::Running
                && !instance.is_master
                && instance.join_at.is_some_and(|at| now >= at)
                && !self.nodes.contains_key(&instance.id)
            {
                joining.push(instance.id.clone());
            }
        }
        for id in joining {
            self.register_node(&id, now);
        }
        for node in self.nodes.values_mut() {
            let alive = self
                .instances
                .get(&node.instance_id)
                .is_some_and(|i| i.state == InstanceState::Running);
            match node.flapping_until {
                Some(until) if now < until => node.set_ready(false, now),
                Some(_) => {
                    node.flapping_until = None;
                    node.set_ready(alive, now);
                }
                None => {}
            }
            if !alive && node.ready {
                node.set_ready(false, now);
                node.not_ready_since = Some(now);
            }
        }
    }

    /// Mirror EC2's view of the managed workers: new ones join after the
    /// boot delay (`join_at` from `boot`), vanished ones are terminated (their
    /// nodes go NotReady).
    pub fn sync_external(
        &mut self,
        live: &[Instance],
        boot: impl Fn(&Instance) -> Timestamp,
        now: Timestamp,
    ) {
        for i in live {
            match self.instances.get_mut(&i.id) {
                Some(known) => {
                    if known.state != i.state {
                        known.state = i.state;
                        known.state_since = now;
                    }
                }
                None => {
                    self.instances.insert(
                        i.id.clone(),
                        SimInstance {
                            id: i.id.clone(),
                            state: i.state,
                            state_since: now,
                            zone: i.zone.clone(),
                            instance_type: i.instance_type.clone(),
                            launched_at: i.launched_at,
                            op_id: i.op_id.clone(),
                            managed: i.managed,
                            is_master: false,
                            join_at: Some(boot(i)),
                            private_ip: i.private_ip.clone().unwrap_or_default(),
                            subnet: i.subnet.clone(),
                        },
                    );
                }
            }
        }
        for known in self.instances.values_mut() {
            if !known.is_master && known.state.is_live() && !live.iter().any(|i| i.id == known.id) {
                known.state = InstanceState::Terminated;
                known.state_since = now;
            }
        }
    }

    pub fn live_managed(&self) -> usize {
        self.instances
            .values()
            .filter(|i| i.managed && i.state.is_live())
            .count()
    }

    pub fn ready_workers(&self) -> usize {
        self.nodes.values().filter(|n| n.ready).count()
    }
}
