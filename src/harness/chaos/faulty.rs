//! One engine incarnation's view of the simulated world, with faults: every
//! port call may be refused, delayed past the lease, applied with its
//! answer lost, or be the last thing the process does before it dies.

use super::faults::FaultPlan;
use crate::engine::lock::EFFECT_CALL_CEILING;
use crate::engine::operation::DESCRIBE_LAG;
use crate::ports::*;
use crate::sim::SimPorts;
use crate::sim::World;
use crate::sim::clock::SimClock;
use crate::sim::ports::lock;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub struct Shared {
    pub world: Arc<Mutex<World>>,
    pub clock: Arc<SimClock>,
    pub plan: Mutex<FaultPlan>,
    pub trace: Mutex<Vec<String>>,
    pub lease: Duration,
    /// `Settings::intent_ttl` of the engines.
    pub intent_ttl: Duration,
}

impl Shared {
    pub fn plan(&self) -> MutexGuard<'_, FaultPlan> {
        self.plan.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn note(&self, engine: &str, text: String) {
        let now = self.clock.now();
        self.trace
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!("{} {engine} {text}", now.0));
    }
}

pub struct FaultyPorts {
    inner: SimPorts,
    pub(super) shared: Arc<Shared>,
    name: String,
    dead: AtomicBool,
}

fn dead_error() -> PortError {
    PortError::Unavailable("the engine process is dead".into())
}

impl FaultyPorts {
    pub fn new(inner: SimPorts, shared: Arc<Shared>, name: String) -> FaultyPorts {
        FaultyPorts {
            inner,
            shared,
            name,
            dead: AtomicBool::new(false),
        }
    }

    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    fn die(&self, kind: &str) {
        self.shared.note(&self.name, format!("CRASH ({kind})"));
        self.dead.store(true, Ordering::SeqCst);
    }

    fn note(&self, text: String) {
        self.shared.note(&self.name, text);
    }

    /// Every call takes time: a few hundred milliseconds, sometimes much
    /// more, up to the adapters' per-call ceiling (past it a real call times
    /// out), which the engine's lease arithmetic relies on.
    fn latency(&self) {
        let took = {
            let mut plan = self.shared.plan();
            let p = plan.rates.slow_call;
            if plan.roll("slow_call", p) {
                let slow = EFFECT_CALL_CEILING.as_millis() as u64 - 5_000;
                Duration::from_millis(5_000 + plan.rng.below(slow))
            } else {
                Duration::from_millis(plan.rng.below(300))
            }
        };
        self.shared.clock.advance(took);
    }

    fn alive(&self) -> PortResult<()> {
        if self.is_dead() {
            return Err(dead_error());
        }
        self.latency();
        Ok(())
    }

    /// A throttling or 5xx burst on one service: refused, never applied.
    fn burst(&self, ec2: bool) -> Option<PortError> {
        let mut plan = self.shared.plan();
        let slot = if ec2 {
            plan.ec2_burst
        } else {
            plan.store_burst
        };
        let state = match slot {
            Some((kind, left)) if left > 0 => Some((kind, left - 1)),
            _ => {
                let p = plan.rates.burst;
                if plan.active && plan.rng.chance(p) {
                    let throttle = plan.rng.chance(0.5);
                    let kind = match (ec2, throttle) {
                        (true, true) => "ec2_throttled",
                        (true, false) => "ec2_5xx",
                        (false, true) => "store_throttled",
                        (false, false) => "store_5xx",
                    };
                    let len = 1 + plan.rng.below(3) as u32;
                    Some((kind, len - 1))
                } else {
                    None
                }
            }
        };
        if ec2 {
            plan.ec2_burst = state;
        } else {
            plan.store_burst = state;
        }
        let (kind, _) = state?;
        plan.count(kind);
        Some(if kind.ends_with("throttled") {
            PortError::Throttled(format!("{kind} (injected)"))
        } else {
            PortError::Unavailable(format!("{kind} (injected)"))
        })
    }

    fn roll(&self, kind: &'static str, p: impl FnOnce(&super::faults::Rates) -> f64) -> bool {
        let mut plan = self.shared.plan();
        let p = p(&plan.rates);
        plan.roll(kind, p)
    }

    /// Someone else frees the lock (break-glass) in the middle of what this
    /// engine is doing.
    fn maybe_steal(&self) {
        if self.roll("lock_stolen", |r| r.steal) {
            let mut w = lock(&self.shared.world);
            let now = w.now;
            let forced = w.table.force_unlock(&BreakGlass {
                who: "chaos-operator".into(),
                reason: "injected".into(),
                now,
            });
            w.invariants.highest_fence = w.invariants.highest_fence.max(forced.fence);
            drop(w);
            self.note(format!("lock stolen (fence {})", forced.fence));
        }
    }

    /// The process stops (GC pause, SIGSTOP, a VM migration) for longer than
    /// its lease; meanwhile another engine may take the lock.
    fn maybe_pause(&self) {
        let stolen = {
            let mut plan = self.shared.plan();
            let p = plan.rates.pause;
            if !plan.roll("pause_beyond_lease", p) {
                return;
            }
            plan.rng.chance(0.7)
        };
        let extra = Duration::from_secs(10);
        let from = self.shared.clock.now();
        self.shared.clock.advance(self.shared.lease + extra);
        let mut w = lock(&self.shared.world);
        // Noted before the world moves on: its deadline checks run as it
        // advances, and must already know the engine was away.
        w.invariants.note_lost(from, self.shared.clock.now());
        w.advance_to(self.shared.clock.now());
        if stolen {
            let now = w.now;
            let request = AcquireRequest {
                owner: "chaos-rival".into(),
                lease_id: format!("rival-{}", now.0),
                now,
                lease: self.shared.lease,
                skew_margin: Duration::from_secs(5),
            };
            if let Some(l) = w.table.acquire(&request) {
                w.invariants.on_acquire(now, l.fence);
            }
        }
        drop(w);
        self.note(format!(
            "paused past the lease (rival took the lock: {stolen})"
        ));
    }
}

#[async_trait]
impl MetricsSource for FaultyPorts {
    async fn instant(&self, signal: Signal) -> Reading {
        if self.alive().is_err() {
            return Reading::unknown("dead");
        }
        let reading = self.inner.instant(signal).await;
        match (signal, self.scrape_gap(), reading) {
            // `avg()` over the series that are there: the missing
            // (busiest) worker drops out and the rest read low.
            (Signal::WorkerCpu, Some(missing), Reading::Known { at, .. }) => {
                let rest: Vec<f64> = self
                    .inner
                    .node_cpu()
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(node, _)| *node != missing)
                    .map(|(_, cpu)| cpu)
                    .collect();
                if rest.is_empty() {
                    Reading::unknown("no worker CPU series (injected scrape gap)")
                } else {
                    let value = rest.iter().sum::<f64>() / rest.len() as f64;
                    Reading::Known { value, at }
                }
            }
            (_, _, reading) => reading,
        }
    }

    async fn node_cpu(&self) -> PortResult<BTreeMap<String, f64>> {
        self.alive()?;
        let mut per_node = self.inner.node_cpu().await?;
        if let Some(missing) = self.scrape_gap() {
            per_node.remove(&missing);
        }
        Ok(per_node)
    }

    async fn range(
        &self,
        s: Signal,
        a: Timestamp,
        b: Timestamp,
        step: Duration,
    ) -> PortResult<Vec<Sample>> {
        self.alive()?;
        self.inner.range(s, a, b, step).await
    }
}

#[async_trait]
impl ClusterApi for FaultyPorts {
    async fn nodes(&self) -> PortResult<Vec<Node>> {
        self.alive()?;
        let mut nodes = self.inner.nodes().await?;
        if self.other_cluster(true) {
            return Ok(Self::foreign_nodes(&nodes));
        }
        if self.roll("selector_typo", |r| r.blind) {
            self.shared.plan().view_faulted = true;
            return Ok(Vec::new());
        }
        if !nodes.is_empty() && self.roll("label_removed", |r| r.unlabel) {
            let mut plan = self.shared.plan();
            let victim = plan.rng.below(nodes.len() as u64) as usize;
            plan.view_faulted = true;
            drop(plan);
            nodes.remove(victim);
        }
        Ok(nodes)
    }

    async fn pods(&self) -> PortResult<Vec<Pod>> {
        self.alive()?;
        if self.other_cluster(false) {
            return Ok(Vec::new());
        }
        self.inner.pods().await
    }

    async fn pods_on(&self, node: &str) -> PortResult<Vec<Pod>> {
        self.alive()?;
        if self.other_cluster(false) {
            return Ok(Vec::new());
        }
        self.inner.pods_on(node).await
    }

    async fn pdbs(&self) -> PortResult<Vec<Pdb>> {
        self.alive()?;
        if self.other_cluster(false) {
            return Ok(Vec::new());
        }
        self.inner.pdbs().await
    }

    async fn set_cordoned(&self, node: &str, cordoned: bool) -> PortResult<()> {
        self.alive()?;
        if self.other_cluster(false) {
            self.note(format!(
                "set_cordoned {node} {cordoned} -> 404 (other cluster)"
            ));
            return Err(Self::not_in_other_cluster(&format!("node {node}")));
        }
        self.maybe_steal();
        let r = self.inner.set_cordoned(node, cordoned).await;
        self.note(format!("set_cordoned {node} {cordoned} -> {r:?}"));
        r
    }

    async fn remove_startup_taint(&self, node: &str) -> PortResult<()> {
        self.alive()?;
        if self.other_cluster(false) {
            return Err(Self::not_in_other_cluster(&format!("node {node}")));
        }
        let r = self.inner.remove_startup_taint(node).await;
        self.note(format!("untaint {node} -> {r:?}"));
        r
    }

    async fn evict(&self, pod: &PodRef) -> PortResult<EvictionOutcome> {
        self.alive()?;
        if self.other_cluster(false) {
            // The other cluster has no such pod: a 404, read as gone.
            self.note(format!("evict {pod} -> 404 (other cluster)"));
            return Ok(EvictionOutcome::AlreadyGone);
        }
        if self.roll("eviction_500", |r| r.eviction_500) {
            self.note(format!("evict {pod} -> injected 500"));
            return Ok(EvictionOutcome::Rejected(
                "500 Internal Server Error (injected)".into(),
            ));
        }
        self.maybe_steal();
        let r = self.inner.evict(pod).await;
        if matches!(r, Ok(EvictionOutcome::Blocked(_))) {
            self.shared.plan().count("pdb_blocked_eviction");
        }
        self.note(format!("evict {pod} -> {r:?}"));
        if self.roll("crash_mid_drain", |r| r.crash) {
            self.die("mid-drain");
            return Err(dead_error());
        }
        r
    }

    async fn delete_node(&self, node: &str) -> PortResult<()> {
        self.alive()?;
        if self.other_cluster(false) {
            return Err(Self::not_in_other_cluster(&format!("node {node}")));
        }
        let r = self.inner.delete_node(node).await;
        self.note(format!("delete_node {node} -> {r:?}"));
        r
    }

    async fn node_of_instance(&self, instance_id: &str) -> PortResult<Option<String>> {
        self.alive()?;
        if self.other_cluster(false) {
            return Ok(None);
        }
        self.inner.node_of_instance(instance_id).await
    }

    async fn server_version(&self) -> PortResult<String> {
        self.alive()?;
        self.inner.server_version().await
    }

    async fn create_event(&self, event: &ClusterEvent) -> PortResult<()> {
        self.alive()?;
        self.inner.create_event(event).await
    }

    async fn bump_event(
        &self,
        namespace: &str,
        name: &str,
        series: EventSeries,
    ) -> PortResult<bool> {
        self.alive()?;
        self.inner.bump_event(namespace, name, series).await
    }
}

impl FaultyPorts {
    /// EC2's Describe lags its writes: instances launched within the
    /// engine's assumed lag (`DESCRIBE_LAG`) may be missing from a listing.
    fn hide_recent(&self, mut list: Vec<Instance>) -> Vec<Instance> {
        let now = self.shared.clock.now();
        let recent = list.iter().any(|i| now.since(i.launched_at) < DESCRIBE_LAG);
        if recent && self.roll("invisible_instance", |r| r.invisible) {
            list.retain(|i| now.since(i.launched_at) >= DESCRIBE_LAG);
        }
        list
    }
}

#[async_trait]
impl CloudApi for FaultyPorts {
    async fn managed_instances(&self) -> PortResult<Vec<Instance>> {
        self.alive()?;
        if let Some(e) = self.burst(true) {
            return Err(e);
        }
        Ok(self.hide_recent(self.inner.managed_instances().await?))
    }

    async fn instances_for_op(&self, op_id: &str) -> PortResult<Vec<Instance>> {
        self.alive()?;
        if let Some(e) = self.burst(true) {
            return Err(e);
        }
        Ok(self.hide_recent(self.inner.instances_for_op(op_id).await?))
    }

    async fn instance(&self, id: &str) -> PortResult<Option<Instance>> {
        self.alive()?;
        if let Some(e) = self.burst(true) {
            return Err(e);
        }
        self.inner.instance(id).await
    }

    async fn master(&self) -> PortResult<Option<Instance>> {
        self.alive()?;
        self.inner.master().await
    }

    async fn launch(&self, request: &LaunchRequest) -> PortResult<Vec<Instance>> {
        self.alive()?;
        if let Some(e) = self.burst(true) {
            self.note(format!("launch {} -> {e}", request.op_id));
            return Err(e);
        }
        // EC2's ClientToken: a retried launch returns what the first one
        // launched, whatever the capacity is now.
        let launched_before = lock(&self.shared.world)
            .tokens
            .contains_key(&request.client_token);
        if !launched_before && self.roll("insufficient_capacity", |r| r.capacity) {
            self.note(format!(
                "launch {} {} -> injected InsufficientInstanceCapacity",
                request.op_id, request.instance_type
            ));
            return Err(PortError::InsufficientCapacity(format!(
                "InsufficientInstanceCapacity: no {} capacity (injected)",
                request.instance_type
            )));
        }
        self.maybe_steal();
        let r = self.inner.launch(request).await;
        self.note(format!(
            "launch {} x{} -> {:?}",
            request.op_id,
            request.count,
            r.as_ref()
                .map(|v| v.iter().map(|i| i.id.clone()).collect::<Vec<_>>())
        ));
        if self.roll("crash_after_launch", |r| r.crash) {
            self.die("after RunInstances, before recording");
            return Err(dead_error());
        }
        if r.is_ok() && self.roll("lost_launch_response", |r| r.lost_response) {
            return Err(PortError::OutcomeUnknown(
                "RunInstances response lost (injected)".into(),
            ));
        }
        r
    }

    async fn terminate(&self, ids: &[String]) -> PortResult<()> {
        self.alive()?;
        if let Some(e) = self.burst(true) {
            return Err(e);
        }
        self.maybe_steal();
        let r = self.inner.terminate(ids).await;
        self.note(format!("terminate {ids:?} -> {r:?}"));
        if self.roll("crash_after_terminate", |r| r.crash) {
            self.die("after terminate, before recording");
            return Err(dead_error());
        }
        r
    }

    async fn console_output(&self, id: &str) -> PortResult<Option<String>> {
        self.alive()?;
        if let Some(e) = self.burst(true) {
            return Err(e);
        }
        self.inner.console_output(id).await
    }
}

#[async_trait]
impl StateStore for FaultyPorts {
    async fn read(&self) -> PortResult<StateSnapshot> {
        self.alive()?;
        if let Some(e) = self.burst(false) {
            return Err(e);
        }
        self.inner.read().await
    }

    async fn acquire(&self, request: &AcquireRequest) -> PortResult<Option<LockRecord>> {
        self.alive()?;
        if let Some(e) = self.burst(false) {
            return Err(e);
        }
        let r = self.inner.acquire(request).await;
        self.note(format!(
            "acquire -> {:?}",
            r.as_ref().map(|l| l.as_ref().map(|l| l.fence))
        ));
        if matches!(r, Ok(Some(_))) && self.roll("lost_acquire_response", |r| r.lost_response) {
            return Err(PortError::OutcomeUnknown(
                "acquire response lost (injected)".into(),
            ));
        }
        r
    }

    async fn renew(&self, lease: &Lease, now: Timestamp, duration: Duration) -> PortResult<()> {
        self.alive()?;
        if let Some(e) = self.burst(false) {
            return Err(e);
        }
        let r = self.inner.renew(lease, now, duration).await;
        if r.is_ok() && self.roll("suspended_past_lease", |r| r.suspend) {
            // The lid closes right after the renew went through: the next
            // destructive call must notice that the lease ran out meanwhile
            // (the monotonic clock counts the suspended time).
            let from = self.shared.clock.now();
            self.shared
                .clock
                .advance(self.shared.lease + Duration::from_secs(15));
            let mut w = lock(&self.shared.world);
            // Before the world moves on (its deadline checks run as it
            // advances).
            w.invariants.note_lost(from, self.shared.clock.now());
            w.advance_to(self.shared.clock.now());
            drop(w);
            self.note("suspended past the lease right after a renew".into());
        }
        if r.is_ok() && self.roll("lost_renew_response", |r| r.lost_response) {
            return Err(PortError::OutcomeUnknown(
                "renew response lost (injected)".into(),
            ));
        }
        r
    }

    async fn release(&self, lease: &Lease) -> PortResult<()> {
        self.alive()?;
        self.inner.release(lease).await
    }

    async fn write_op(
        &self,
        lease: &Lease,
        previous: &OpRecord,
        next: &OpRecord,
    ) -> PortResult<()> {
        self.alive()?;
        if let Some(e) = self.burst(false) {
            return Err(e);
        }
        if self.roll("store_validation_error", |r| r.rejected) {
            self.note(format!(
                "write rev {} -> injected ValidationException",
                next.rev
            ));
            return Err(PortError::RequestRejected(
                "write operation (TransactWriteItems): ValidationException (injected)".into(),
            ));
        }
        if self.roll("transaction_conflict", |r| r.conflict) {
            self.note(format!(
                "write rev {} -> injected TransactionConflict",
                next.rev
            ));
            return Err(PortError::Unavailable(
                "write operation (TransactWriteItems): transaction conflict (injected); nothing was applied"
                    .into(),
            ));
        }
        self.maybe_pause();
        let r = self.inner.write_op(lease, previous, next).await;
        self.note(format!(
            "write rev {} {:?} fence {} -> {r:?}",
            next.rev,
            next.phase(),
            lease.fence
        ));
        let intent = matches!(
            next.phase(),
            Some(OpPhase::LaunchIntended | OpPhase::CordonIntended)
        ) && previous.in_flight().is_none();
        if r.is_ok() && intent && self.roll("crash_after_intent", |r| r.crash) {
            self.die("after the intent write");
            return Err(dead_error());
        }
        if r.is_ok() && intent && self.roll("stale_intent", |r| r.stale) {
            // The engine dies, and every other one is away (a partition, a
            // fleet-wide restart) for longer than the intent's bound: the
            // next engine finds an intent decided on a world long gone.
            self.die("after the intent write, everyone away");
            let from = self.shared.clock.now();
            self.shared
                .clock
                .advance(self.shared.intent_ttl + Duration::from_secs(60));
            let mut w = lock(&self.shared.world);
            // No engine at all meanwhile: time invariant 7 does not charge.
            w.invariants.note_lost(from, self.shared.clock.now());
            w.advance_to(self.shared.clock.now());
            return Err(dead_error());
        }
        if r.is_ok() && self.roll("lost_write_response", |r| r.lost_response) {
            return Err(PortError::OutcomeUnknown(
                "transaction response lost (injected)".into(),
            ));
        }
        r
    }

    async fn force_unlock(&self, audit: &BreakGlass) -> PortResult<LockRecord> {
        self.inner.force_unlock(audit).await
    }

    async fn clock_sample(&self, local: &dyn Clock) -> PortResult<Option<ClockSample>> {
        self.alive()?;
        if let Some(e) = self.burst(false) {
            return Err(e);
        }
        self.inner.clock_sample(local).await
    }
}
