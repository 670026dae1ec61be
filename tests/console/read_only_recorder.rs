//! Read-only mode makes zero mutating calls: every port is wrapped in a
//! recorder that counts (and reports) any call that could change the
//! world, while the read-only engine runs through a flash sale and is even
//! sent operator commands the read-only console would never send.

use crate::support;

use async_trait::async_trait;
use k3s_autoscaler::app::{Command, Snapshot};
use k3s_autoscaler::engine::{Action, Mode, Request};
use k3s_autoscaler::ports::*;
use k3s_autoscaler::runtime::console::engine_task;
use k3s_autoscaler::runtime::settings::engine_settings;
use k3s_autoscaler::runtime::{Engine, Shutdown};
use k3s_autoscaler::sim::ScenarioKind;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Delegates reads to the simulator; records every mutating call.
struct Recorder {
    inner: Ports,
    mutations: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn mutated(&self, what: String) -> PortError {
        self.mutations.lock().unwrap().push(what.clone());
        PortError::Refused(format!("recorder: mutating call {what} in read-only mode"))
    }
}

#[async_trait]
impl MetricsSource for Recorder {
    async fn instant(&self, signal: Signal) -> Reading {
        self.inner.metrics.instant(signal).await
    }
    async fn node_cpu(&self) -> PortResult<BTreeMap<String, f64>> {
        self.inner.metrics.node_cpu().await
    }
    async fn range(
        &self,
        s: Signal,
        a: Timestamp,
        b: Timestamp,
        step: Duration,
    ) -> PortResult<Vec<Sample>> {
        self.inner.metrics.range(s, a, b, step).await
    }
}

#[async_trait]
impl ClusterApi for Recorder {
    async fn nodes(&self) -> PortResult<Vec<Node>> {
        self.inner.cluster.nodes().await
    }
    async fn pods(&self) -> PortResult<Vec<Pod>> {
        self.inner.cluster.pods().await
    }
    async fn pods_on(&self, node: &str) -> PortResult<Vec<Pod>> {
        self.inner.cluster.pods_on(node).await
    }
    async fn pdbs(&self) -> PortResult<Vec<Pdb>> {
        self.inner.cluster.pdbs().await
    }
    async fn set_cordoned(&self, node: &str, cordoned: bool) -> PortResult<()> {
        Err(self.mutated(format!("set_cordoned({node}, {cordoned})")))
    }
    async fn remove_startup_taint(&self, node: &str) -> PortResult<()> {
        Err(self.mutated(format!("remove_startup_taint({node})")))
    }
    async fn evict(&self, pod: &PodRef) -> PortResult<EvictionOutcome> {
        Err(self.mutated(format!("evict({pod})")))
    }
    async fn delete_node(&self, node: &str) -> PortResult<()> {
        Err(self.mutated(format!("delete_node({node})")))
    }
    async fn node_of_instance(&self, instance_id: &str) -> PortResult<Option<String>> {
        self.inner.cluster.node_of_instance(instance_id).await
    }
    async fn server_version(&self) -> PortResult<String> {
        self.inner.cluster.server_version().await
    }
    async fn create_event(&self, event: &ClusterEvent) -> PortResult<()> {
        Err(self.mutated(format!("create_event({})", event.name)))
    }
    async fn bump_event(&self, _: &str, name: &str, _: EventSeries) -> PortResult<bool> {
        Err(self.mutated(format!("bump_event({name})")))
    }
}

#[async_trait]
impl CloudApi for Recorder {
    async fn managed_instances(&self) -> PortResult<Vec<Instance>> {
        self.inner.cloud.managed_instances().await
    }
    async fn instances_for_op(&self, op_id: &str) -> PortResult<Vec<Instance>> {
        self.inner.cloud.instances_for_op(op_id).await
    }
    async fn instance(&self, id: &str) -> PortResult<Option<Instance>> {
        self.inner.cloud.instance(id).await
    }
    async fn master(&self) -> PortResult<Option<Instance>> {
        self.inner.cloud.master().await
    }
    async fn launch(&self, request: &LaunchRequest) -> PortResult<Vec<Instance>> {
        Err(self.mutated(format!("launch({})", request.op_id)))
    }
    async fn terminate(&self, ids: &[String]) -> PortResult<()> {
        Err(self.mutated(format!("terminate({ids:?})")))
    }
}

#[async_trait]
impl StateStore for Recorder {
    async fn read(&self) -> PortResult<StateSnapshot> {
        self.inner.state.read().await
    }
    async fn acquire(&self, request: &AcquireRequest) -> PortResult<Option<LockRecord>> {
        Err(self.mutated(format!("acquire({})", request.owner)))
    }
    async fn renew(&self, lease: &Lease, _: Timestamp, _: Duration) -> PortResult<()> {
        Err(self.mutated(format!("renew({})", lease.lease_id)))
    }
    async fn release(&self, lease: &Lease) -> PortResult<()> {
        Err(self.mutated(format!("release({})", lease.lease_id)))
    }
    async fn write_op(&self, _: &Lease, previous: &OpRecord, _: &OpRecord) -> PortResult<()> {
        Err(self.mutated(format!("write_op(rev {})", previous.rev)))
    }
    async fn force_unlock(&self, audit: &BreakGlass) -> PortResult<LockRecord> {
        Err(self.mutated(format!("force_unlock({})", audit.who)))
    }
}

#[tokio::test]
async fn the_read_only_console_engine_makes_zero_mutating_calls() {
    let (config, demo) = support::demo(ScenarioKind::FlashSale, 2, true);
    let mutations = Arc::new(Mutex::new(Vec::new()));
    let recorder = Arc::new(Recorder {
        inner: demo.ports.clone(),
        mutations: mutations.clone(),
    });
    let ports = Ports {
        metrics: recorder.clone(),
        cluster: recorder.clone(),
        cloud: recorder.clone(),
        state: recorder,
        clock: demo.ports.clock.clone(),
    };
    let mut engine = Engine::new(
        ports.clone(),
        engine_settings(&config),
        None,
        Mode::ReadOnly,
    );
    // Handed an event writer anyway, a read-only engine ignores it: the
    // recorder below fails the test on any event write.
    engine.set_event_recorder(k3s_autoscaler::runtime::events::EventRecorder::start(
        ports.cluster.clone(),
        "read-only",
    ));

    let (command_tx, command_rx) = mpsc::channel(16);
    let (snapshot_tx, mut snapshot_rx) = mpsc::channel::<Box<Snapshot>>(4);
    let shutdown = Shutdown::new();
    let task = tokio::spawn(engine_task(
        engine,
        ports,
        config.engine.interval.get(),
        command_rx,
        snapshot_tx,
        shutdown.clone(),
    ));
    let mut saw_scale_up = false;
    for tick in 0..240 {
        let snapshot = snapshot_rx.recv().await.expect("a snapshot per tick");
        saw_scale_up |= matches!(snapshot.decision.action, Action::ScaleUp { .. });
        assert_eq!(snapshot.mode, Mode::ReadOnly);
        if tick % 40 == 7 {
            // What a read-only console never sends; the engine must still refuse.
            for command in [
                Command::Operator(Request::AddWorker),
                Command::Operator(Request::Suggested(snapshot.decision.action.clone())),
                Command::SetMode(Mode::Auto),
                Command::Pause(false),
            ] {
                command_tx.send(command).await.unwrap();
            }
        }
    }
    shutdown.request();
    task.await.unwrap();
    assert!(
        saw_scale_up,
        "the flash sale called for a scale-up that read-only only showed"
    );
    assert_eq!(
        *mutations.lock().unwrap(),
        Vec::<String>::new(),
        "mutating calls in read-only mode"
    );
    let world = k3s_autoscaler::sim::ports::lock(&demo.world);
    assert!(world.table.lock.is_none(), "the lock was taken");
    assert_eq!(world.fleet.live_managed(), 5, "the fleet changed");
}
