//! The simulated world: one seeded model of EC2, Kubernetes, Prometheus and
//! the state table, advanced in small steps up to whatever time the clock
//! says. Ports call into it; it checks the invariants of docs/architecture.md §4 as they do.

mod checks;
mod drift;
mod foresight;

pub use checks::SideEffect;
pub use drift::Drift;

use super::accounting::{Accounting, Summary};
use super::fleet::Fleet;
use super::invariants::Invariants;
use super::lock_table::LockTable;
use super::rng::Rng;
use super::scenario::{Scenario, ScenarioKind};
use super::workload::Workload;
use crate::ports::{
    EvictionOutcome, Instance, InstanceState, LaunchRequest, Node, Pod, PortError, PortResult,
    Sample, Signal, Timestamp,
};
use std::collections::VecDeque;
use std::time::Duration;

/// Monday 2026-01-05 00:00 UTC: simulations start at midnight so that
/// `diurnal` shows its night first.
pub const SIM_EPOCH: Timestamp = Timestamp(1_767_571_200_000);
/// World steps are at most this long.
const STEP: Duration = Duration::from_secs(5);
/// Prometheus scrape interval of the simulated metrics.
pub const SCRAPE: Duration = Duration::from_secs(15);
/// History kept for range queries (charts show at most 6 h; 24 h spare).
const HISTORY: usize = 24 * 3600 / 15;

#[derive(Clone, Debug)]
pub struct SimSettings {
    pub cluster: String,
    pub seed: u64,
    pub scenario: ScenarioKind,
    /// Multiplies demand; with `initial_workers` it scales the cluster.
    pub scale: f64,
    pub initial_workers: u32,
    pub boot_delay: Duration,
    pub never_join_probability: f64,
    /// Probability that a launched instance joins 3–9 boot delays late.
    pub late_join_probability: f64,
    pub start: Timestamp,
    /// For invariant checks.
    pub min_workers: u32,
    pub max_workers: u32,
    pub join_timeout: Duration,
    pub tick: Duration,
    /// How old an intent may be when it is acted on (`Settings::intent_ttl`).
    pub intent_ttl: Duration,
    /// The workload's clock runs this many times faster (1 = real).
    pub warp: f64,
    /// Instances come from EC2 (`sync_external`) instead of this model.
    pub external_fleet: bool,
}

/// What the simulator knows about each engine that talks to it.
#[derive(Clone, Debug, Default)]
pub struct EngineTrack {
    /// Owner id of its latest successful acquisition.
    pub owner: Option<String>,
    /// Expiry of the lease it was last granted (acquire or renew), until it
    /// released it: its side effects must happen before this.
    pub lease_until: Option<Timestamp>,
    pub read_only: bool,
    pub mutating_calls: u64,
    /// (lease id, fence) of its latest successful acquisition: the only
    /// lease its operation writes may carry (invariant 1, checked on what
    /// it *sends*, whatever the table then does with it).
    pub granted: Option<(String, u64)>,
}

pub struct World {
    pub settings: SimSettings,
    pub now: Timestamp,
    rng: Rng,
    scenario: Scenario,
    pub fleet: Fleet,
    pub workload: Workload,
    pub table: LockTable,
    pub engines: Vec<EngineTrack>,
    pub accounting: Accounting,
    pub invariants: Invariants,
    history: VecDeque<(Timestamp, Option<f64>, f64, f64)>,
    last_scrape: Option<Timestamp>,
    /// node → cumulative CPU seconds (idle, busy) over its 2 vCPUs: what
    /// node-exporter's `node_cpu_seconds_total` counts.
    pub cpu_seconds: std::collections::BTreeMap<String, (f64, f64)>,
    /// World-level faults injected, by kind (fault-injection runs).
    pub injected: std::collections::BTreeMap<&'static str, u64>,
    /// EC2's idempotency: every ClientToken seen, with the request it came
    /// with and what it launched.
    pub tokens: std::collections::BTreeMap<String, (LaunchRequest, Vec<String>)>,
    /// The API server's Events (`events.k8s.io/v1`).
    pub events: super::events::EventStore,
}

impl World {
    pub fn new(settings: SimSettings) -> Self {
        let mut rng = Rng::new(settings.seed);
        let mut scenario = Scenario::new(
            settings.scenario,
            settings.seed,
            settings.scale,
            settings.start,
        );
        scenario.warp = settings.warp;
        let start = settings.start;
        let mut world = World {
            now: start,
            scenario,
            fleet: Fleet::default(),
            workload: Workload::demo(settings.scale),
            table: LockTable::default(),
            engines: Vec::new(),
            accounting: Accounting {
                start,
                now: start,
                ..Accounting::default()
            },
            invariants: Invariants::default(),
            history: VecDeque::new(),
            last_scrape: None,
            cpu_seconds: std::collections::BTreeMap::new(),
            injected: std::collections::BTreeMap::new(),
            tokens: std::collections::BTreeMap::new(),
            events: Default::default(),
            rng: rng.fork(1),
            settings,
        };
        world.fleet.external = world.settings.external_fleet;
        // The master: untagged as a worker, never a node in the worker list.
        world.fleet.add_instance(
            &mut rng,
            start.minus(Duration::from_secs(86_400)),
            None,
            None,
            true,
        );
        let born = start.minus(Duration::from_secs(3600));
        for _ in 0..world.settings.initial_workers {
            let id = world
                .fleet
                .add_instance(&mut rng, born, None, Some(born), false);
            if let Some(i) = world.fleet.instances.get_mut(&id) {
                i.state = InstanceState::Running;
            }
            world.fleet.register_node(&id, born);
        }
        // Settle the workload as if it had been running: pods placed and started.
        let warm = start.minus(Duration::from_secs(60));
        let demand = world.scenario.demand(start);
        world.workload.step(&world.fleet, demand, warm);
        world
            .workload
            .step(&world.fleet, demand, warm.plus(Duration::from_secs(30)));
        world.workload.waits.clear();
        world.scrape();
        world
    }

    pub fn register_engine(&mut self, read_only: bool) -> usize {
        self.engines.push(EngineTrack {
            read_only,
            ..EngineTrack::default()
        });
        self.engines.len() - 1
    }

    /// Step the model up to `t` in steps of at most five seconds.
    pub fn advance_to(&mut self, t: Timestamp) {
        while self.now < t {
            let next = t.min(self.now.plus(STEP));
            let dt = next.since(self.now);
            self.accounting.integrate(
                dt,
                self.fleet.live_managed(),
                self.workload.unschedulable_count(),
            );
            self.now = next;
            self.accounting.now = next;
            self.fleet.step(next);
            let demand = self.scenario.demand(next);
            self.workload.step(&self.fleet, demand, next);
            let secs = dt.as_secs_f64() * 2.0;
            for (node, cpu) in &self.workload.node_cpu {
                let busy = (cpu / 100.0).clamp(0.0, 1.0);
                let entry = self.cpu_seconds.entry(node.clone()).or_default();
                entry.0 += secs * (1.0 - busy);
                entry.1 += secs * busy;
            }
            if self.last_scrape.is_none_or(|s| next.since(s) >= SCRAPE) {
                self.scrape();
            }
            self.check_join_deadlines();
        }
    }

    fn scrape(&mut self) {
        self.last_scrape = Some(self.now);
        let cpu = self.workload.worker_cpu();
        let pending = self.workload.unschedulable_count() as f64;
        let ready = self.fleet.ready_workers() as f64;
        self.history.push_back((self.now, cpu, pending, ready));
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
    }

    pub fn demand(&self) -> f64 {
        self.scenario.demand(self.now)
    }

    // ---- reads -------------------------------------------------------------

    pub fn instant(&self, signal: Signal) -> Option<(f64, Timestamp)> {
        let (at, cpu, pending, ready) = *self.history.back()?;
        let value = match signal {
            Signal::WorkerCpu => cpu?,
            Signal::UnschedulablePods => pending,
            Signal::ReadyWorkers => ready,
        };
        Some((value, at))
    }

    pub fn range(
        &self,
        signal: Signal,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> Vec<Sample> {
        let step_ms = step.as_millis().max(1) as i64;
        let mut out = Vec::new();
        let mut next_at = start;
        for &(at, cpu, pending, ready) in &self.history {
            if at < next_at || at > end {
                continue;
            }
            let value = match signal {
                Signal::WorkerCpu => cpu,
                Signal::UnschedulablePods => Some(pending),
                Signal::ReadyWorkers => Some(ready),
            };
            if let Some(value) = value {
                out.push(Sample { at, value });
            }
            next_at = Timestamp(at.0 + step_ms);
        }
        out
    }

    pub fn nodes(&self) -> Vec<Node> {
        self.fleet.nodes.values().map(|n| n.to_domain()).collect()
    }

    pub fn pods(&self) -> Vec<Pod> {
        self.workload
            .pods
            .values()
            .map(|p| p.to_domain(self.now))
            .collect()
    }

    pub fn pods_on(&self, node: &str) -> Vec<Pod> {
        self.workload
            .pods
            .values()
            .filter(|p| p.node.as_deref() == Some(node))
            .map(|p| p.to_domain(self.now))
            .collect()
    }

    pub fn managed_instances(&self) -> Vec<Instance> {
        self.fleet
            .instances
            .values()
            .filter(|i| i.managed && i.state.is_live())
            .map(|i| i.to_domain())
            .collect()
    }

    pub fn instances_for_op(&self, op_id: &str) -> Vec<Instance> {
        self.fleet
            .instances
            .values()
            .filter(|i| i.op_id.as_deref() == Some(op_id))
            .map(|i| i.to_domain())
            .collect()
    }

    pub fn console_output(&self, id: &str) -> PortResult<Option<String>> {
        let server = self.master().and_then(|m| m.private_ip).unwrap_or_default();
        match self.fleet.instances.get(id) {
            Some(i) => Ok(i.console_text(self.now, &server)),
            None => Err(PortError::NotFound(format!("instance {id}"))),
        }
    }

    pub fn master(&self) -> Option<Instance> {
        self.fleet
            .instances
            .values()
            .find(|i| i.is_master && i.state.is_live())
            .map(|i| i.to_domain())
    }

    /// Mirror EC2 (the staging façade): see `Fleet::sync_external`.
    pub fn sync_external(&mut self, live: &[Instance]) {
        let now = self.now;
        let boot = self.settings.boot_delay;
        let rng = &mut self.rng;
        let start = self.settings.start;
        let mut joins = std::collections::BTreeMap::new();
        for i in live {
            // Workers that were there before the simulation began come up
            // together (so the first pods spread over them); later launches
            // boot with jitter.
            let join_at = if i.launched_at <= start {
                start.plus(boot)
            } else {
                let jitter = rng.range(0.7, 1.3);
                i.launched_at
                    .max(now.minus(boot * 2))
                    .plus(boot.mul_f64(jitter))
            };
            joins.insert(i.id.clone(), join_at);
        }
        self.fleet
            .sync_external(live, |i| joins.get(&i.id).copied().unwrap_or(now), now);
    }

    /// Fault injection: a node reports NotReady for `duration`, then recovers.
    pub fn flap_node(&mut self, node: &str, duration: Duration) {
        let until = self.now.plus(duration);
        if let Some(n) = self.fleet.nodes.get_mut(node) {
            n.flapping_until = Some(until);
            n.set_ready(false, self.now);
            *self.injected.entry("flap_not_ready").or_default() += 1;
        }
    }

    /// Fault injection: someone terminates an instance outside any operation.
    pub fn terminate_from_outside(&mut self, id: &str) {
        if let Some(i) = self.fleet.instances.get_mut(id)
            && i.state.is_live()
        {
            i.state = InstanceState::ShuttingDown;
            i.state_since = self.now;
            *self.injected.entry("external_terminate").or_default() += 1;
        }
    }

    /// An instance that is not ours (no managed tags): for conformance and
    /// fault-injection tests, which check that it is never touched.
    pub fn add_foreign_instance(&mut self) -> String {
        let now = self.now;
        let id = self
            .fleet
            .add_instance(&mut self.rng, now, None, None, false);
        if let Some(i) = self.fleet.instances.get_mut(&id) {
            i.managed = false;
        }
        id
    }

    // ---- writes (each checks the lock holder: invariants 6 and 8) ----------

    pub fn launch(&mut self, request: &LaunchRequest) -> PortResult<Vec<Instance>> {
        // EC2's ClientToken, and nothing else: the same token and request
        // return the first launch's instances (in whatever state they are
        // now), the same token with other parameters is refused. A launch
        // is never deduplicated by its tags: that is the engine's job.
        if let Some((first, ids)) = self.tokens.get(&request.client_token) {
            if first != request {
                return Err(PortError::TokenReused(format!(
                    "IdempotentParameterMismatch: token {} was used with other parameters",
                    request.client_token
                )));
            }
            return Ok(ids
                .iter()
                .filter_map(|id| self.fleet.instances.get(id).map(|i| i.to_domain()))
                .collect());
        }
        let live = self.fleet.live_managed() as u32;
        if live + request.count > self.settings.max_workers {
            self.invariants.breach(
                self.now,
                3,
                format!(
                    "launch of {} with {live} live workers would exceed max_workers {}",
                    request.count, self.settings.max_workers
                ),
            );
        }
        let mut ids = Vec::new();
        for _ in 0..request.count {
            let join_at = if self.rng.chance(self.settings.never_join_probability) {
                *self.injected.entry("never_join").or_default() += 1;
                None
            } else if self.rng.chance(self.settings.late_join_probability) {
                // Late: some join within the join timeout, some after it.
                *self.injected.entry("late_join").or_default() += 1;
                let factor = self.rng.range(3.0, 9.0);
                Some(self.now.plus(self.settings.boot_delay.mul_f64(factor)))
            } else {
                let jitter = self.rng.range(0.7, 1.3);
                Some(self.now.plus(self.settings.boot_delay.mul_f64(jitter)))
            };
            let now = self.now;
            let id = self.fleet.add_instance(
                &mut self.rng,
                now,
                Some(request.op_id.clone()),
                join_at,
                false,
            );
            if let Some(i) = self.fleet.instances.get_mut(&id) {
                i.instance_type = request.instance_type.clone();
                i.subnet = request.subnet.clone();
            }
            ids.push(id);
        }
        self.tokens
            .insert(request.client_token.clone(), (request.clone(), ids.clone()));
        Ok(ids
            .iter()
            .filter_map(|id| self.fleet.instances.get(id).map(|i| i.to_domain()))
            .collect())
    }

    pub fn terminate(&mut self, ids: &[String]) -> PortResult<()> {
        // Refused before any change if any id is missing or not a managed
        // worker (the adapter's rules).
        if let Some(missing) = ids
            .iter()
            .find(|id| !self.fleet.instances.contains_key(*id))
        {
            return Err(PortError::NotFound(format!(
                "not terminated: {missing} does not exist"
            )));
        }
        if let Some(bad) = ids
            .iter()
            .find(|id| !self.fleet.instances.get(*id).is_some_and(|i| i.managed))
        {
            self.invariants.breach(
                self.now,
                5,
                format!("terminate requested for unmanaged instance {bad}"),
            );
            return Err(PortError::Refused(format!("{bad} is not a managed worker")));
        }
        self.check_terminations(ids);
        self.check_blast_radius(ids);
        for id in ids {
            if let Some(i) = self.fleet.instances.get_mut(id)
                && i.state.is_live()
            {
                i.state = InstanceState::ShuttingDown;
                i.state_since = self.now;
            }
        }
        Ok(())
    }

    pub fn set_cordoned(&mut self, node: &str, cordoned: bool) -> PortResult<()> {
        let n = self
            .fleet
            .nodes
            .get_mut(node)
            .ok_or_else(|| PortError::NotFound(format!("node {node}")))?;
        n.cordoned = cordoned;
        if !cordoned {
            self.invariants.drain_cordons.remove(node);
        }
        Ok(())
    }

    /// An annotation change (the façade's merge patch): a value sets the
    /// key, `None` removes it.
    pub fn annotate_node(
        &mut self,
        node: &str,
        changes: &[(String, Option<String>)],
    ) -> PortResult<()> {
        let n = self
            .fleet
            .nodes
            .get_mut(node)
            .ok_or_else(|| PortError::NotFound(format!("node {node}")))?;
        for (key, value) in changes {
            match value {
                Some(v) => n.annotations.insert(key.clone(), v.clone()),
                None => n.annotations.remove(key),
            };
        }
        Ok(())
    }

    pub fn remove_startup_taint(&mut self, node: &str) -> PortResult<()> {
        let n = self
            .fleet
            .nodes
            .get_mut(node)
            .ok_or_else(|| PortError::NotFound(format!("node {node}")))?;
        n.startup_taint = false;
        Ok(())
    }

    pub fn evict(&mut self, uid: &str) -> EvictionOutcome {
        let now = self.now;
        self.workload.evict(uid, now)
    }

    pub fn delete_node(&mut self, node: &str) {
        self.fleet.nodes.remove(node);
    }

    pub fn summary(&self) -> Summary {
        // Pods still waiting count with what they have waited so far.
        let mut waits = self.workload.waits.clone();
        waits.extend(self.workload.pods.values().filter_map(|p| {
            p.unschedulable_since
                .filter(|_| p.node.is_none() && p.deleting_at.is_none())
                .map(|since| self.now.since(since))
        }));
        self.accounting.summary(&waits, &self.invariants.violations)
    }
}
