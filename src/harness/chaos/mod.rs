//! Deterministic fault-injection simulation: one to four engines
//! share one simulated world and lock table; one seed drives the workload,
//! every fault, every clock skew and every restart. The invariants of docs/architecture.md §4
//! are checked on every call and every step; once the faults stop, every
//! operation must end and the lock must come free (invariant 9).

pub mod faults;
pub mod faulty;
mod hostile;
pub mod sabotage;
pub mod skew;

use crate::config::Config;
use crate::engine::Mode;
use crate::engine::report::TickReport;
use crate::ports::{Clock, Ports};
use crate::rng::Rng;
use crate::runtime::executor::Executor;
use crate::runtime::ids::IdSource;
use crate::runtime::lease::LockClient;
use crate::runtime::settings::engine_settings;
use crate::runtime::{Engine, Shutdown};
use crate::sim::invariants::Violation;
use crate::sim::ports::lock;
use crate::sim::{SIM_EPOCH, ScenarioKind, SimClock, SimPorts, SimSettings, World};
use faults::FaultPlan;
use faulty::{FaultyPorts, Shared};
use sabotage::{Sabotage, SabotagedPorts};
use skew::SkewedClock;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const STEP: Duration = Duration::from_secs(5);
/// Faults for two hours, then a quiet hour; no new operations in the last
/// half hour, so that every operation can be seen to end.
const FAULTS_FOR: Duration = Duration::from_secs(2 * 3600);
const QUIESCE_AT: Duration = Duration::from_secs(2 * 3600 + 30 * 60);
const RUN_FOR: Duration = Duration::from_secs(3 * 3600);
const MAX_RESTART: Duration = Duration::from_secs(180);

#[derive(Clone, Debug, Default)]
pub struct SeedOutcome {
    pub seed: u64,
    pub engines: usize,
    /// The negative control planted in engine 0, if any.
    pub sabotage: Option<Sabotage>,
    /// The control of that negative control: its conditions, engine 0
    /// healthy (`run_control_seed`).
    pub control: bool,
    pub violations: Vec<Violation>,
    pub faults: BTreeMap<&'static str, u64>,
    pub trace: Vec<String>,
    pub scale_ups: u32,
    pub scale_downs: u32,
    pub failed: u32,
    pub aborted: u32,
    pub crashes: u32,
    /// Times the circuit breaker opened.
    pub circuit_opened: u32,
}

impl SeedOutcome {
    /// The one command that replays this seed exactly.
    pub fn replay_command(&self) -> String {
        let sabotage = self
            .sabotage
            .map(|s| {
                let control = if self.control { " --control" } else { "" };
                format!(" --sabotage {}{control}", s.name())
            })
            .unwrap_or_default();
        format!(
            "cargo run --release --features harness --example chaos -- --seeds 1 --start-seed {} --engines {}{sabotage} --trace",
            self.seed, self.engines
        )
    }
}

/// What kind of engine a slot runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// An engine with an executor (automatic, supervised once quiet).
    ReadWrite,
    /// `--read-only`: no executor; invariant 8 watches it.
    ReadOnly,
    /// Engine 0 of a negative-control run.
    Broken(Sabotage),
}

struct Slot {
    index: usize,
    role: Role,
    incarnation: u32,
    ports: Arc<FaultyPorts>,
    engine: Engine,
    next_tick: crate::ports::Timestamp,
    restart_at: Option<crate::ports::Timestamp>,
    skew_ms: i64,
}

#[allow(clippy::too_many_arguments)]
fn spawn(
    shared: &Arc<Shared>,
    config: &Config,
    seed: u64,
    index: usize,
    incarnation: u32,
    skew_ms: i64,
    quiet: bool,
    role: Role,
) -> (Arc<FaultyPorts>, Engine) {
    let base: Arc<dyn Clock> = shared.clock.clone();
    let name = format!("e{index}.{incarnation}");
    let read_only = match role {
        Role::ReadOnly => true,
        Role::Broken(s) => s.read_only(),
        Role::ReadWrite => false,
    };
    let inner = SimPorts::new(shared.world.clone(), base.clone(), read_only);
    let faulty = Arc::new(FaultyPorts::new(inner, shared.clone(), name.clone()));
    let clock: Arc<dyn Clock> = Arc::new(SkewedClock { base, skew_ms });
    let ports = match role {
        Role::Broken(kind) => {
            let broken = Arc::new(SabotagedPorts::new(faulty.clone(), shared.clone(), kind));
            Ports {
                metrics: broken.clone(),
                cluster: broken.clone(),
                cloud: broken.clone(),
                state: broken,
                clock: clock.clone(),
            }
        }
        _ => Ports {
            metrics: faulty.clone(),
            cluster: faulty.clone(),
            cloud: faulty.clone(),
            state: faulty.clone(),
            clock: clock.clone(),
        },
    };
    let mut config = config.clone();
    if let Role::Broken(kind) = role {
        kind.engine_config(&mut config);
    }
    let settings = engine_settings(&config);
    if role == Role::ReadOnly {
        return (faulty, Engine::new(ports, settings, None, Mode::ReadOnly));
    }
    let ids = Arc::new(IdSource::seeded(
        seed ^ ((index as u64) << 32) ^ u64::from(incarnation) << 48,
    ));
    let owner = format!("chaos:{name}");
    let lock_client = LockClient::new(
        ports.state.clone(),
        clock,
        settings.lease.clone(),
        owner,
        ids.clone(),
    );
    let executor = Executor::new(ports.clone(), settings.clone(), lock_client, ids);
    let mode = if quiet { Mode::Supervised } else { Mode::Auto };
    (faulty, Engine::new(ports, settings, Some(executor), mode))
}

/// Run one seed. `engines`: how many (1–4); drawn from the seed when None.
pub fn run_seed(seed: u64, engines: Option<usize>) -> SeedOutcome {
    run_seed_with(seed, engines, None)
}

/// Run one seed with engine 0 broken as `sabotage` says (a negative
/// control: the run must report exactly that invariant).
pub fn run_seed_with(seed: u64, engines: Option<usize>, sabotage: Option<Sabotage>) -> SeedOutcome {
    run_seed_planted(seed, engines, sabotage.map(|s| (s, true)))
}

/// The control of a negative control: the same seed, world, fault rates
/// and shared settings as `run_seed_with(seed, engines, Some(sabotage))`,
/// with engine 0 healthy (a plain read-only engine for `ReadOnlyMutates`).
/// It must be clean, so that what the sabotaged run reports is the
/// breakage and not the conditions set up for it.
pub fn run_control_seed(seed: u64, engines: Option<usize>, sabotage: Sabotage) -> SeedOutcome {
    run_seed_planted(seed, engines, Some((sabotage, false)))
}

fn run_seed_planted(
    seed: u64,
    engines: Option<usize>,
    plant: Option<(Sabotage, bool)>,
) -> SeedOutcome {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let mut out = SeedOutcome {
                seed,
                ..SeedOutcome::default()
            };
            out.violations.push(Violation {
                at: SIM_EPOCH,
                invariant: 0,
                text: format!("cannot start a runtime: {e}"),
            });
            return out;
        }
    };
    runtime.block_on(run(seed, engines, plant))
}

async fn run(seed: u64, engines: Option<usize>, plant: Option<(Sabotage, bool)>) -> SeedOutcome {
    let mut rng = Rng::new(seed);
    let engines = engines.unwrap_or(1 + rng.below(4) as usize).clamp(1, 4);
    // One seed in three also runs a `--read-only` engine beside them, so
    // that invariant 8 watches a real read-only engine under every fault.
    let read_only_engine = rng.below(3) == 0;
    let sabotage = plant.map(|(kind, _)| kind);
    let mut config = Config::default();
    if let Some(kind) = sabotage {
        kind.shared_config(&mut config);
    }
    let config = config;
    let settings = engine_settings(&config);
    let tick = config.engine.interval.get();
    let lease = settings.lease.lease;
    let skew = settings.lease.skew_margin;
    let world_settings = SimSettings {
        cluster: "chaos".into(),
        seed,
        scenario: ScenarioKind::FlashSale,
        scale: rng.range(0.8, 1.2),
        initial_workers: 5,
        boot_delay: config.demo.boot_delay.get(),
        never_join_probability: rng.range(0.0, 0.15),
        late_join_probability: rng.range(0.0, 0.2),
        start: SIM_EPOCH,
        min_workers: config.policy.min_workers,
        max_workers: config.policy.max_workers,
        join_timeout: config.engine.join_timeout.get(),
        intent_ttl: config.engine.interval.get() * 2 + config.lock.lease.get(),
        // A launch must end within join_timeout + one tick *of a live
        // engine*: a restart's downtime is counted as lost time (below);
        // allow for the lease takeover after it.
        tick: tick + lease + skew + tick,
        warp: 1.0,
        external_fleet: false,
    };
    let mut world_settings = world_settings;
    if let Some(kind) = sabotage {
        kind.world(&mut world_settings);
    }
    let clock = Arc::new(SimClock::manual(SIM_EPOCH));
    let shared = Arc::new(Shared {
        world: Arc::new(Mutex::new(World::new(world_settings))),
        clock: clock.clone(),
        plan: Mutex::new(FaultPlan::new(rng.fork(7))),
        trace: Mutex::new(Vec::new()),
        lease,
        intent_ttl: settings.intent_ttl(),
    });
    if let Some(kind) = sabotage {
        kind.rates(&mut shared.plan().rates);
    }
    let mut slots: Vec<Slot> = (0..engines + usize::from(read_only_engine))
        .map(|index| {
            let role = match (index, plant) {
                (0, Some((kind, true))) => Role::Broken(kind),
                (0, Some((kind, false))) if kind.read_only() => Role::ReadOnly,
                (i, _) if i == engines => Role::ReadOnly,
                _ => Role::ReadWrite,
            };
            // Clock skew within the configured margin, either way.
            let skew_ms = rng.range(-0.9, 0.9) * skew.as_millis() as f64;
            let (ports, engine) = spawn(
                &shared,
                &config,
                seed,
                index,
                0,
                skew_ms as i64,
                false,
                role,
            );
            Slot {
                index,
                role,
                incarnation: 0,
                ports,
                engine,
                next_tick: SIM_EPOCH
                    .plus(Duration::from_millis(rng.below(tick.as_millis() as u64))),
                restart_at: None,
                skew_ms: skew_ms as i64,
            }
        })
        .collect();
    let shutdown = Shutdown::new();
    let end = SIM_EPOCH.plus(RUN_FOR);
    let mut crashes = 0;
    let mut quiet = false;
    loop {
        clock.advance(STEP);
        let now = clock.now();
        if now >= end {
            break;
        }
        if now >= SIM_EPOCH.plus(FAULTS_FOR) {
            shared.plan().active = false;
        }
        if !quiet && now >= SIM_EPOCH.plus(QUIESCE_AT) {
            quiet = true;
            for s in slots.iter_mut().filter(|s| s.role != Role::ReadOnly) {
                s.engine.set_mode(Mode::Supervised);
            }
        }
        world_faults(&shared, &mut rng);
        // A seeded order each step: who gets to the lock first varies.
        let mut order: Vec<usize> = (0..slots.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for i in order {
            // Another engine that may act: it takes a dead one's lease over
            // once the lease runs out (the allowance has room for that).
            let another_may_act = slots.iter().enumerate().any(|(j, s)| {
                j != i
                    && s.restart_at.is_none()
                    && !s.ports.is_dead()
                    && !matches!(s.role, Role::ReadOnly)
            });
            let slot = &mut slots[i];
            if let Some(at) = slot.restart_at {
                if now >= at {
                    slot.incarnation += 1;
                    let (ports, engine) = spawn(
                        &shared,
                        &config,
                        seed,
                        slot.index,
                        slot.incarnation,
                        slot.skew_ms,
                        quiet,
                        slot.role,
                    );
                    slot.ports = ports;
                    slot.engine = engine;
                    slot.restart_at = None;
                    slot.next_tick = now;
                }
                continue;
            }
            if now >= slot.next_tick {
                let started = clock.now();
                let report = slot.engine.tick(None, &shutdown).await;
                note_tick(&shared, slot.index, slot.incarnation, &report);
                // A destructive step held by the sanity stop on a node
                // list an injected fault emptied or thinned: the fault's
                // time, as for any refused call.
                let view_faulted = std::mem::take(&mut shared.plan().view_faulted);
                let held_on_fault = view_faulted && held_by_the_sanity_stop(&report);
                if !matches!(slot.role, Role::ReadOnly)
                    && (spoiled_by_a_fault(&report) || held_on_fault)
                {
                    // Until its next tick, this engine could not act.
                    lock(&shared.world)
                        .invariants
                        .note_lost(started, clock.now().plus(tick));
                }
                slot.next_tick = clock.now().plus(tick);
                if slot.ports.is_dead() {
                    crashes += 1;
                    let delay = Duration::from_secs(30 + rng.below(MAX_RESTART.as_secs() - 30));
                    slot.restart_at = Some(clock.now().plus(delay));
                    // Dead until it restarts, and no other engine to take
                    // over: time invariant 7 does not charge (two crashes
                    // in one launch's window would otherwise outlast any
                    // fixed allowance). With another engine alive nothing
                    // is excused: it must take over within the allowance.
                    if !another_may_act {
                        lock(&shared.world)
                            .invariants
                            .note_lost(clock.now(), clock.now().plus(delay));
                    }
                }
            }
        }
        lock(&shared.world).check_fleet();
    }
    // Invariant 9: after the faults, everything has come to rest.
    let mut world = lock(&shared.world);
    world.advance_to(clock.now());
    let now = world.now;
    if let Some(op) = world.table.record.in_flight().cloned() {
        world.invariants.breach(
            now,
            9,
            format!(
                "{} {} still {} an hour after the faults stopped",
                op.kind.name(),
                op.id,
                op.phase
            ),
        );
    }
    // Free means what `acquire` means by it: released, or expired by more
    // than the skew margin. A lease still being renewed an hour after the
    // faults stopped is a lock that never comes free.
    if let Some(l) = world.table.lock.clone()
        && l.in_progress
        && l.until >= now.minus(skew)
    {
        world.invariants.breach(
            now,
            9,
            format!(
                "lock still held by {} (fence {}, until {}) an hour after the faults stopped",
                l.owner, l.fence, l.until
            ),
        );
    }
    let mut faults = shared.plan().injected.clone();
    for (kind, n) in &world.injected {
        *faults.entry(kind).or_default() += n;
    }
    let trace = std::mem::take(&mut *shared.trace.lock().unwrap_or_else(|p| p.into_inner()));
    SeedOutcome {
        seed,
        engines,
        sabotage,
        control: plant.is_some_and(|(_, broken)| !broken),
        violations: world.invariants.violations.clone(),
        faults,
        trace,
        scale_ups: world.accounting.scale_ups,
        scale_downs: world.accounting.scale_downs,
        failed: world.accounting.failed,
        aborted: world.accounting.aborted,
        crashes,
        circuit_opened: world.accounting.circuit_opened,
    }
}

/// Faults of the world itself: nodes flapping NotReady, instances
/// terminated from outside.
fn world_faults(shared: &Shared, rng: &mut Rng) {
    let (flap, terminate) = {
        let mut plan = shared.plan();
        if !plan.active {
            return;
        }
        let (pf, pt) = (
            plan.rates.flap_per_step,
            plan.rates.external_terminate_per_step,
        );
        (plan.rng.chance(pf), plan.rng.chance(pt))
    };
    if !(flap || terminate) {
        return;
    }
    let mut w = lock(&shared.world);
    w.advance_to(shared.clock.now());
    if flap {
        let ready: Vec<String> = w
            .fleet
            .nodes
            .values()
            .filter(|n| n.ready)
            .map(|n| n.name.clone())
            .collect();
        if !ready.is_empty() {
            let pick = ready[rng.below(ready.len() as u64) as usize].clone();
            let secs = 30 + rng.below(240);
            w.flap_node(&pick, Duration::from_secs(secs));
        }
    }
    if terminate {
        let live: Vec<String> = w
            .fleet
            .instances
            .values()
            .filter(|i| i.managed && i.state.is_live())
            .map(|i| i.id.clone())
            .collect();
        if !live.is_empty() {
            let pick = live[rng.below(live.len() as u64) as usize].clone();
            w.terminate_from_outside(&pick);
        }
    }
}

/// A tick whose read or step failed on an injected fault (every injected
/// error says so): the engine could not act on it, through no fault of its
/// own, so invariant 7 does not count the time against it.
fn held_by_the_sanity_stop(report: &TickReport) -> bool {
    report
        .exec
        .as_ref()
        .and_then(|e| e.stopped.as_deref())
        .is_some_and(|s| s.starts_with("sanity stop"))
}

fn spoiled_by_a_fault(report: &TickReport) -> bool {
    let injected = |text: &str| text.contains("(injected)");
    report.state.as_ref().err().is_some_and(|e| injected(e))
        || report
            .exec
            .as_ref()
            .and_then(|e| e.error.as_ref())
            .is_some_and(|e| injected(&e.message))
}

/// A tick that did or refused something, in the seed's trace: the calls
/// alone do not say why an engine stood still (a replay's first question).
fn note_tick(shared: &Shared, index: usize, incarnation: u32, report: &TickReport) {
    let exec = report.exec.as_ref();
    let stopped = exec.and_then(|e| e.stopped.as_deref());
    let refused = exec.and_then(|e| e.refused.as_deref());
    let error = exec.and_then(|e| e.error.as_ref()).map(|e| e.to_string());
    let steps = exec.map_or(0, |e| e.steps.len());
    let unread = report.state.as_ref().err();
    if report.decision.action.is_hold()
        && stopped.is_none()
        && error.is_none()
        && steps == 0
        && unread.is_none()
    {
        return;
    }
    let mut text = format!("tick: {}", report.decision.action.label());
    if let Some(e) = unread {
        text.push_str(&format!("; state unreadable: {e}"));
    }
    if let Some(why) = &report.decision.sanity_stop {
        text.push_str(&format!("; sanity stop: {why}"));
    }
    if let Some(e) = exec {
        for step in &e.steps {
            text.push_str(&format!("; step: {step}"));
        }
    }
    if let Some(why) = refused {
        text.push_str(&format!("; refused: {why}"));
    }
    if let Some(why) = stopped {
        text.push_str(&format!("; stopped: {why}"));
    }
    if let Some(e) = error {
        text.push_str(&format!("; error: {e}"));
    }
    shared.note(&format!("e{index}.{incarnation}"), text);
}
