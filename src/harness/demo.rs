//! Builds the embedded simulated cluster for `--demo` from the config's
//! `[policy]`, `[drain]`, `[lock]`, `[engine]` and `[demo]` sections.

use crate::config::Config;
use crate::ports::{Clock, Ports};
use crate::sim::{SIM_EPOCH, ScenarioKind, SimClock, SimPorts, SimSettings, World};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, PartialEq)]
pub enum Speed {
    /// Simulated time runs this many times faster than real time.
    Times(f64),
    /// As fast as the CPU allows: time moves only when the engine sleeps.
    Max,
}

#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub scenario: ScenarioKind,
    pub seed: u64,
    pub speed: Speed,
    /// Scale the simulated cluster: initial workers and demand follow it.
    pub workers: Option<u32>,
    /// Simulated start time; `None`: Monday 2026-01-05 00:00 UTC, so seeded
    /// runs replay exactly. The console starts at the real time of day.
    pub start: Option<crate::ports::Timestamp>,
}

pub struct Demo {
    pub world: Arc<Mutex<World>>,
    pub clock: Arc<SimClock>,
    pub ports: Ports,
}

pub fn sim_settings(config: &Config, options: &DemoOptions) -> SimSettings {
    let initial = options.workers.unwrap_or(config.demo.initial_workers);
    let scale = f64::from(initial.max(1)) / f64::from(config.demo.initial_workers.max(1));
    SimSettings {
        cluster: config.cluster.name.clone(),
        seed: options.seed,
        scenario: options.scenario,
        scale,
        initial_workers: initial,
        boot_delay: config.demo.boot_delay.get(),
        never_join_probability: config.demo.never_join_probability,
        late_join_probability: 0.0,
        start: options.start.unwrap_or(SIM_EPOCH),
        min_workers: config.policy.min_workers,
        max_workers: config.policy.max_workers,
        join_timeout: config.engine.join_timeout.get(),
        intent_ttl: config.engine.interval.get() * 2 + config.lock.lease.get(),
        tick: config.engine.interval.get(),
        warp: 1.0,
        external_fleet: false,
    }
}

impl Demo {
    pub fn new(config: &Config, options: &DemoOptions, read_only: bool) -> Self {
        let settings = sim_settings(config, options);
        let clock = Arc::new(match options.speed {
            Speed::Max => SimClock::manual(settings.start),
            Speed::Times(x) => SimClock::scaled(settings.start, x),
        });
        let world = Arc::new(Mutex::new(World::new(settings)));
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let sim = Arc::new(SimPorts::new(world.clone(), dyn_clock.clone(), read_only));
        let ports = Ports {
            metrics: sim.clone(),
            cluster: sim.clone(),
            cloud: sim.clone(),
            state: sim,
            clock: dyn_clock,
        };
        Demo {
            world,
            clock,
            ports,
        }
    }
}

/// The simulated cluster with an engine wired to it: what `--demo` runs.
pub fn engine_on(
    demo: &Demo,
    config: &Config,
    mode: crate::engine::Mode,
    seed: u64,
) -> crate::runtime::Engine {
    engine_with(
        demo,
        crate::runtime::settings::engine_settings(config),
        mode,
        seed,
    )
}

/// The same, with engine settings of the caller's choosing (baselines).
pub fn engine_with(
    demo: &Demo,
    settings: crate::engine::Settings,
    mode: crate::engine::Mode,
    seed: u64,
) -> crate::runtime::Engine {
    use crate::runtime::executor::Executor;
    use crate::runtime::ids::IdSource;
    use crate::runtime::lease::LockClient;
    let ids = Arc::new(IdSource::seeded(seed));
    let role = match mode {
        crate::engine::Mode::Auto => "auto",
        crate::engine::Mode::Supervised => "console",
        crate::engine::Mode::ReadOnly => "read-only",
    };
    let owner = crate::engine::lock::owner_id("demo", std::process::id(), role, &ids.uuid());
    let lock = LockClient::new(
        demo.ports.state.clone(),
        demo.ports.clock.clone(),
        settings.lease.clone(),
        owner,
        ids.clone(),
    );
    let executor = Executor::new(demo.ports.clone(), settings.clone(), lock, ids);
    crate::runtime::Engine::new(demo.ports.clone(), settings, Some(executor), mode)
}

/// The simulated world's checks around a headless run: the fleet's
/// invariants after every tick (each violation logged once), and the
/// world brought up to the run's last instant at the end.
pub struct WorldWatch {
    world: Arc<Mutex<World>>,
    reported: usize,
}

impl WorldWatch {
    pub fn new(world: Arc<Mutex<World>>) -> WorldWatch {
        WorldWatch { world, reported: 0 }
    }
}

impl crate::runtime::headless::TickWatcher for WorldWatch {
    fn after_tick(&mut self) {
        let mut w = crate::sim::ports::lock(&self.world);
        w.check_fleet();
        for v in &w.invariants.violations[self.reported..] {
            tracing::error!(target: "sim", invariant = v.invariant, "{v}");
        }
        self.reported = w.invariants.violations.len();
    }

    fn finished(&mut self, now: crate::ports::Timestamp) {
        crate::sim::ports::lock(&self.world).advance_to(now);
    }
}
