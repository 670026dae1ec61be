//! The headless runner (`--auto`, `--read-only`, `--once`): ticks until told
//! to stop, then reports.

use super::engine_loop::Engine;
use super::shutdown::Shutdown;
use crate::engine::TickReport;
use crate::ports::{Clock, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use tracing::info;

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

/// What a simulated run checks around the ticks (the simulated world's
/// invariants, `harness::demo::WorldWatch`); a run on real backends has
/// none. The runtime knows nothing of the simulator.
pub trait TickWatcher: Send {
    /// After each tick.
    fn after_tick(&mut self);
    /// Once, after the last tick, at `now`.
    fn finished(&mut self, now: Timestamp);
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
    mut watcher: Option<&mut dyn TickWatcher>,
    shutdown: &Shutdown,
) -> RunOutcome {
    let started: Timestamp = clock.now();
    let mut ticks = 0u64;
    let mut last = None;
    loop {
        if shutdown.is_requested() {
            info!(target: "runtime", "shutdown requested: stopping after {ticks} tick(s)");
            break;
        }
        let report = engine.tick(None, shutdown).await;
        ticks += 1;
        if let Some(watcher) = watcher.as_deref_mut() {
            watcher.after_tick();
        }
        last = Some(report);
        // The background writers (events, notices) get their turn between
        // ticks even on a simulated clock, whose sleeps never wait.
        tokio::task::yield_now().await;
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
            _ = engine.until_next_tick(interval) => {}
            _ = shutdown.wait() => {}
        }
        if stop
            .duration
            .is_some_and(|d| clock.now().since(started) >= d)
        {
            break;
        }
    }
    if let Some(watcher) = watcher {
        watcher.finished(clock.now());
    }
    RunOutcome { ticks, last }
}
