//! The headless runner (`--auto`, `--read-only`, `--once`): ticks until told
//! to stop, then reports.

use super::engine_loop::Engine;
use super::shutdown::Shutdown;
use crate::engine::TickReport;
use crate::ports::{Clock, Timestamp};
use crate::sim::World;
use crate::sim::ports::lock;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{error, info};

#[derive(Clone, Debug, Default)]
pub struct StopAfter {
    pub ticks: Option<u64>,
    /// Simulated (or real) time since start.
    pub duration: Option<Duration>,
    /// After the last tick, let one more interval pass, so that N ticks
    /// cover N intervals (a simulated day is 5 760 ticks of 15 s). `--once`
    /// does not wait.
    pub full_last_interval: bool,
}

pub struct RunOutcome {
    pub ticks: u64,
    pub last: Option<TickReport>,
}

pub async fn run(
    engine: &mut Engine,
    clock: Arc<dyn Clock>,
    interval: Duration,
    stop: StopAfter,
    world: Option<Arc<Mutex<World>>>,
    shutdown: &Shutdown,
) -> RunOutcome {
    let started: Timestamp = clock.now();
    let mut ticks = 0u64;
    let mut last = None;
    let mut reported_violations = 0usize;
    loop {
        if shutdown.is_requested() {
            info!(target: "runtime", "shutdown requested: stopping after {ticks} tick(s)");
            break;
        }
        let report = engine.tick(None, shutdown).await;
        ticks += 1;
        if let Some(world) = &world {
            let mut w = lock(world);
            w.check_fleet();
            for v in &w.invariants.violations[reported_violations..] {
                error!(target: "sim", invariant = v.invariant, "{v}");
            }
            reported_violations = w.invariants.violations.len();
        }
        last = Some(report);
        if stop.ticks.is_some_and(|n| ticks >= n) {
            if stop.full_last_interval {
                tokio::select! {
                    _ = clock.sleep(interval) => {}
                    _ = shutdown.wait() => {}
                }
            }
            break;
        }
        tokio::select! {
            _ = clock.sleep(interval) => {}
            _ = shutdown.wait() => {}
        }
        if stop
            .duration
            .is_some_and(|d| clock.now().since(started) >= d)
        {
            break;
        }
    }
    if let Some(world) = &world {
        lock(world).advance_to(clock.now());
    }
    RunOutcome { ticks, last }
}
