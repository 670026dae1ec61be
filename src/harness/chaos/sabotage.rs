//! Negative controls: one deliberately broken engine behaviour per
//! invariant, planted in the real chaos runner. A checker that
//! cannot fail proves nothing, so the chaos CI test runs each of these and
//! requires that exactly its invariant fires.
//!
//! The breakage sits between the engine and the world (a wrapper around the
//! engine's ports, or the settings it runs with), so the engine under test
//! stays the production one and the world sees the calls a broken engine
//! would make. Only engine 0 (every incarnation of it) is broken.

use super::faulty::{FaultyPorts, Shared};
use crate::config::{Config, ConfigDuration};
use crate::ports::*;
use crate::sim::SimSettings;
use crate::sim::ports::lock;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sabotage {
    /// Operation writes carry a fence one above the one granted.
    ForgedFence,
    /// Right after starting an operation, starts a second one over it.
    SecondOperation,
    /// Cordoning a node for a scale-down also cordons another worker.
    CordonsTwoNodes,
    /// Every launch is sent twice, under two client tokens.
    DoubleLaunch,
    /// The engine's floor is four below the `min_workers` every other
    /// engine and the world hold to.
    IgnoresMinWorkers,
    /// The drain sees no pods on its node and terminates it full.
    SkipsDrain,
    /// An effect call without a timeout: a launch hangs past the lease,
    /// then goes through (the adapters' per-call ceiling is what the
    /// engine's lease arithmetic relies on).
    HangsPastLease,
    /// The engine waits three join timeouts for a launch to join.
    IgnoresJoinTimeout,
    /// A read-only engine given an executor and automatic mode.
    ReadOnlyMutates,
    /// Release is replaced by renewing the lease on every later read.
    NeverReleases,
    /// A scale-down's terminate takes one more instance with it.
    TerminatesTwo,
    /// The engine reads the operation record without its pause (an older
    /// engine that does not know the field, say): it acts while the
    /// circuit breaker holds every other engine.
    IgnoresPause,
}

impl Sabotage {
    pub const ALL: [Sabotage; 12] = [
        Sabotage::ForgedFence,
        Sabotage::SecondOperation,
        Sabotage::CordonsTwoNodes,
        Sabotage::DoubleLaunch,
        Sabotage::IgnoresMinWorkers,
        Sabotage::SkipsDrain,
        Sabotage::HangsPastLease,
        Sabotage::IgnoresJoinTimeout,
        Sabotage::ReadOnlyMutates,
        Sabotage::NeverReleases,
        Sabotage::TerminatesTwo,
        Sabotage::IgnoresPause,
    ];

    /// The invariant (docs/architecture.md §4 numbering, `Violation::invariant`) this
    /// breakage must trip.
    pub fn invariant(self) -> u8 {
        match self {
            Sabotage::ForgedFence => 1,
            Sabotage::SecondOperation | Sabotage::CordonsTwoNodes => 2,
            Sabotage::DoubleLaunch => 3,
            Sabotage::IgnoresMinWorkers => 4,
            Sabotage::SkipsDrain => 5,
            Sabotage::HangsPastLease => 6,
            Sabotage::IgnoresJoinTimeout => 7,
            Sabotage::ReadOnlyMutates => 8,
            Sabotage::NeverReleases => 9,
            Sabotage::TerminatesTwo => 10,
            Sabotage::IgnoresPause => 11,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Sabotage::ForgedFence => "forged-fence",
            Sabotage::SecondOperation => "second-operation",
            Sabotage::CordonsTwoNodes => "cordons-two-nodes",
            Sabotage::DoubleLaunch => "double-launch",
            Sabotage::IgnoresMinWorkers => "ignores-min-workers",
            Sabotage::SkipsDrain => "skips-drain",
            Sabotage::HangsPastLease => "hangs-past-lease",
            Sabotage::IgnoresJoinTimeout => "ignores-join-timeout",
            Sabotage::ReadOnlyMutates => "read-only-mutates",
            Sabotage::NeverReleases => "never-releases",
            Sabotage::TerminatesTwo => "terminates-two",
            Sabotage::IgnoresPause => "ignores-pause",
        }
    }

    pub fn parse(name: &str) -> Option<Sabotage> {
        Sabotage::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The settings every engine of the run, and the world, start from:
    /// the control run (the same seed with no engine broken) uses them
    /// too, so what differs between the two runs is the breakage alone.
    pub fn shared_config(self, config: &mut Config) {
        if self == Sabotage::IgnoresMinWorkers {
            config.policy.min_workers += 4;
        }
    }

    /// What the broken engine changes on top of the shared settings.
    pub fn engine_config(self, config: &mut Config) {
        match self {
            Sabotage::IgnoresJoinTimeout => {
                let t = config.engine.join_timeout.get();
                config.engine.join_timeout = ConfigDuration(t * 3);
            }
            Sabotage::IgnoresMinWorkers => {
                config.policy.min_workers = config.policy.min_workers.saturating_sub(4);
            }
            _ => {}
        }
    }

    /// A world that gives the breakage something to act on.
    pub fn world(self, settings: &mut SimSettings) {
        match self {
            Sabotage::IgnoresJoinTimeout => settings.never_join_probability = 0.4,
            // Launches that never join open the circuit breaker.
            Sabotage::IgnoresPause => settings.never_join_probability = 0.6,
            _ => {}
        }
    }

    /// A phrase the breakage's violation must contain: the invariant's
    /// number alone could be the right rule fired by the wrong cause.
    pub fn expected_text(self) -> &'static str {
        match self {
            Sabotage::ForgedFence => "sent an operation write with lease",
            Sabotage::SecondOperation => "started while",
            Sabotage::CordonsTwoNodes => "still cordoned for one",
            Sabotage::DoubleLaunch => "double launch",
            Sabotage::IgnoresMinWorkers => "below min",
            Sabotage::SkipsDrain => "pod(s) left on it",
            Sabotage::HangsPastLease => "outside any lease",
            Sabotage::IgnoresJoinTimeout => "neither joined nor was terminated",
            Sabotage::ReadOnlyMutates => "read-only engine",
            Sabotage::NeverReleases => "lock still held",
            Sabotage::TerminatesTwo => "terminated by one operation",
            Sabotage::IgnoresPause => "under the pause by the circuit breaker",
        }
    }

    /// Faults that give the breakage something to act on.
    pub fn rates(self, rates: &mut super::faults::Rates) {
        if self == Sabotage::TerminatesTwo {
            // NotReady nodes to take along (a Ready one would break the
            // drain rule too, and this control is for the blast radius).
            rates.flap_per_step *= 10.0;
        }
        // The views that are rightly not acted on (a worker's CPU series
        // missing, another cluster's node list) hold scale-downs and
        // terminates, the very moments a breakage needs: these runs test
        // the checker, so they go without them (each is drawn from its own
        // stream, so the rest of the seed is as before).
        rates.scrape_gap = 0.0;
        rates.other_cluster = 0.0;
    }

    /// Whether the control run gave the checker something to watch: an
    /// engine that scaled up, or, for a pause that must be honoured, a
    /// circuit breaker that opened.
    pub fn control_was_busy(self, control: &super::SeedOutcome) -> Result<(), &'static str> {
        match self {
            Sabotage::IgnoresPause if control.circuit_opened == 0 => {
                Err("the circuit breaker never opened in the control run")
            }
            Sabotage::IgnoresPause => Ok(()),
            _ if control.scale_ups == 0 => Err("the control run never scaled up"),
            _ => Ok(()),
        }
    }

    /// Whether engine 0 is a read-only engine (that should not mutate).
    pub fn read_only(self) -> bool {
        self == Sabotage::ReadOnlyMutates
    }
}

/// Engine 0's ports with its breakage.
pub struct SabotagedPorts {
    inner: Arc<FaultyPorts>,
    shared: Arc<Shared>,
    kind: Sabotage,
    /// The lease a `NeverReleases` engine keeps renewing.
    kept: Mutex<Option<Lease>>,
}

impl SabotagedPorts {
    pub fn new(inner: Arc<FaultyPorts>, shared: Arc<Shared>, kind: Sabotage) -> SabotagedPorts {
        SabotagedPorts {
            inner,
            shared,
            kind,
            kept: Mutex::new(None),
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Option<Lease>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Another live worker node, uncordoned, not `node` (for CordonsTwoNodes).
    fn other_worker(&self, node: &str) -> Option<String> {
        let w = lock(&self.shared.world);
        w.fleet
            .nodes
            .values()
            .filter(|n| n.name != node && !n.cordoned && n.ready)
            .filter(|n| {
                w.fleet
                    .instances
                    .get(&n.instance_id)
                    .is_some_and(|i| i.managed && i.state.is_live())
            })
            .map(|n| n.name.clone())
            .next()
    }

    /// For TerminatesTwo: during a scale-down, one more live managed
    /// instance without a Ready node (so that only the blast-radius rule,
    /// not the drain rules, is broken).
    fn extra_victim(&self, ids: &[String]) -> Option<String> {
        let w = lock(&self.shared.world);
        let scale_down = w
            .table
            .record
            .in_flight()
            .is_some_and(|op| matches!(op.kind, OpKind::ScaleDown { .. }));
        if !scale_down {
            return None;
        }
        let ready = |id: &str| w.fleet.nodes.get(id).is_some_and(|n| n.ready);
        w.fleet
            .instances
            .values()
            .filter(|i| i.managed && i.state.is_live() && !ids.contains(&i.id))
            .find(|i| !ready(&i.id))
            .map(|i| i.id.clone())
    }
}

#[async_trait]
impl MetricsSource for SabotagedPorts {
    async fn instant(&self, signal: Signal) -> Reading {
        self.inner.instant(signal).await
    }

    async fn node_cpu(&self) -> PortResult<BTreeMap<String, f64>> {
        self.inner.node_cpu().await
    }

    async fn range(
        &self,
        s: Signal,
        a: Timestamp,
        b: Timestamp,
        step: Duration,
    ) -> PortResult<Vec<Sample>> {
        self.inner.range(s, a, b, step).await
    }
}

#[async_trait]
impl ClusterApi for SabotagedPorts {
    async fn nodes(&self) -> PortResult<Vec<Node>> {
        self.inner.nodes().await
    }

    async fn pods(&self) -> PortResult<Vec<Pod>> {
        self.inner.pods().await
    }

    async fn pods_on(&self, node: &str) -> PortResult<Vec<Pod>> {
        let mut pods = self.inner.pods_on(node).await?;
        if self.kind == Sabotage::SkipsDrain {
            pods.retain(|p| p.owner_kind.as_deref() == Some("DaemonSet"));
        }
        Ok(pods)
    }

    async fn pdbs(&self) -> PortResult<Vec<Pdb>> {
        self.inner.pdbs().await
    }

    async fn set_cordoned(&self, node: &str, cordoned: bool) -> PortResult<()> {
        self.inner.set_cordoned(node, cordoned).await?;
        if self.kind == Sabotage::CordonsTwoNodes
            && cordoned
            && let Some(other) = self.other_worker(node)
        {
            let _ = self.inner.set_cordoned(&other, true).await;
        }
        Ok(())
    }

    async fn remove_startup_taint(&self, node: &str) -> PortResult<()> {
        self.inner.remove_startup_taint(node).await
    }

    async fn evict(&self, pod: &PodRef) -> PortResult<EvictionOutcome> {
        self.inner.evict(pod).await
    }

    async fn delete_node(&self, node: &str) -> PortResult<()> {
        self.inner.delete_node(node).await
    }

    async fn node_of_instance(&self, instance_id: &str) -> PortResult<Option<String>> {
        self.inner.node_of_instance(instance_id).await
    }

    async fn server_version(&self) -> PortResult<String> {
        self.inner.server_version().await
    }

    async fn create_event(&self, event: &ClusterEvent) -> PortResult<()> {
        self.inner.create_event(event).await
    }

    async fn bump_event(
        &self,
        namespace: &str,
        name: &str,
        series: EventSeries,
    ) -> PortResult<bool> {
        self.inner.bump_event(namespace, name, series).await
    }
}

#[async_trait]
impl CloudApi for SabotagedPorts {
    async fn managed_instances(&self) -> PortResult<Vec<Instance>> {
        self.inner.managed_instances().await
    }

    async fn instances_for_op(&self, op_id: &str) -> PortResult<Vec<Instance>> {
        self.inner.instances_for_op(op_id).await
    }

    async fn instance(&self, id: &str) -> PortResult<Option<Instance>> {
        self.inner.instance(id).await
    }

    async fn master(&self) -> PortResult<Option<Instance>> {
        self.inner.master().await
    }

    async fn launch(&self, request: &LaunchRequest) -> PortResult<Vec<Instance>> {
        if self.kind == Sabotage::HangsPastLease {
            self.shared
                .clock
                .advance(self.shared.lease + Duration::from_secs(10));
        }
        let first = self.inner.launch(request).await;
        if self.kind == Sabotage::DoubleLaunch && first.is_ok() {
            let again = LaunchRequest {
                client_token: format!("{}-again", request.client_token),
                ..request.clone()
            };
            let _ = self.inner.launch(&again).await;
        }
        first
    }

    async fn terminate(&self, ids: &[String]) -> PortResult<()> {
        if self.kind == Sabotage::TerminatesTwo
            && let Some(extra) = self.extra_victim(ids)
        {
            let mut more = ids.to_vec();
            more.push(extra);
            return self.inner.terminate(&more).await;
        }
        self.inner.terminate(ids).await
    }

    async fn console_output(&self, id: &str) -> PortResult<Option<String>> {
        self.inner.console_output(id).await
    }
}

#[async_trait]
impl StateStore for SabotagedPorts {
    async fn read(&self) -> PortResult<StateSnapshot> {
        let kept = self.kept().clone();
        if let Some(lease) = kept {
            let now = self.shared.clock.now();
            let _ = self.inner.renew(&lease, now, self.shared.lease).await;
        }
        let mut snapshot = self.inner.read().await?;
        if self.kind == Sabotage::IgnoresPause {
            snapshot.record.pause = None;
        }
        Ok(snapshot)
    }

    async fn acquire(&self, request: &AcquireRequest) -> PortResult<Option<LockRecord>> {
        self.inner.acquire(request).await
    }

    async fn renew(&self, lease: &Lease, now: Timestamp, duration: Duration) -> PortResult<()> {
        self.inner.renew(lease, now, duration).await
    }

    async fn release(&self, lease: &Lease) -> PortResult<()> {
        if self.kind == Sabotage::NeverReleases {
            *self.kept() = Some(lease.clone());
            return Ok(());
        }
        self.inner.release(lease).await
    }

    async fn write_op(
        &self,
        lease: &Lease,
        previous: &OpRecord,
        next: &OpRecord,
    ) -> PortResult<()> {
        if self.kind == Sabotage::ForgedFence {
            let forged = Lease {
                fence: lease.fence + 1,
                ..lease.clone()
            };
            return self.inner.write_op(&forged, previous, next).await;
        }
        self.inner.write_op(lease, previous, next).await?;
        let starts = previous.in_flight().is_none() && next.in_flight().is_some();
        if self.kind == Sabotage::SecondOperation
            && starts
            && let Some(op) = next.op.clone()
        {
            let second = OpRecord {
                rev: next.rev + 1,
                op: Some(Operation {
                    id: format!("{}-again", op.id),
                    ..op
                }),
                ..next.clone()
            };
            let _ = self.inner.write_op(lease, next, &second).await;
        }
        Ok(())
    }

    async fn force_unlock(&self, audit: &BreakGlass) -> PortResult<LockRecord> {
        self.inner.force_unlock(audit).await
    }

    async fn clock_sample(&self, local: &dyn Clock) -> PortResult<Option<ClockSample>> {
        self.inner.clock_sample(local).await
    }
}
