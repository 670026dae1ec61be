//! `--compare oracle`: the fleet a policy with perfect foresight of the
//! demand would run (`sim/world/foresight.rs`), on the same seeded world.
//! Every `engine.interval` it launches what the pods will need one join
//! lead from now (so a worker joins when it is first needed) and removes
//! a worker not needed before a new one could join, as soon as its pods
//! fit on the others (one a tick). Within `min_workers`/`max_workers`, so
//! where `max_workers` binds the oracle too leaves pods pending; which ones
//! then depends on where each fleet's pods happen to sit, so there it is
//! no strict bound (README, "Against the oracle"). The other runs are
//! reported against it (worker-hours / the oracle's, pending pod-minutes
//! above the oracle's).

use super::demo::{DemoOptions, sim_settings};
use crate::config::Config;
use crate::sim::{Summary, World};
use std::time::Duration;

pub fn run(config: &Config, options: &DemoOptions, duration: Duration) -> Summary {
    let mut world = World::new(sim_settings(config, options));
    let step = config.engine.interval.get().max(Duration::from_secs(1));
    let end = world.now.plus(duration);
    while world.now < end {
        let now = world.now;
        let lead = world.join_lead();
        // A launch now joins at now + lead: launch what is needed then and
        // not yet launched (a worker still booting will have joined).
        let live = world.fleet.live_managed() as u32;
        let needed = world.workers_needed_at(now.plus(lead));
        world.foresight_launch(needed.saturating_sub(live));
        // Keep what is needed before a worker launched now could join.
        let keep = (0..=lead.as_millis() / step.as_millis())
            .map(|k| world.workers_needed_at(now.plus(step * k as u32)))
            .max()
            .unwrap_or(0);
        // One a tick: the pods of a removed worker are still on it until
        // the next step, so a second fit check this tick would count room
        // they are about to take.
        if world.fleet.live_managed() as u32 > keep {
            world.foresight_remove_one();
        }
        world.advance_to(now.plus(step).min(end));
    }
    world.summary()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::demo::Speed;
    use crate::sim::ScenarioKind;

    fn options(scenario: ScenarioKind) -> DemoOptions {
        DemoOptions {
            scenario,
            seed: 1,
            speed: Speed::Max,
            workers: None,
            start: None,
        }
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn the_oracle_follows_the_demand_within_the_bounds_with_no_pod_left_waiting() {
        let config = Config::default();
        let s = run(&config, &options(ScenarioKind::Diurnal), DAY);
        assert_eq!(s.simulated_hours, 24.0);
        assert_eq!(s.invariant_violations, 0, "{:?}", s.violations);
        let p = &config.policy;
        assert!(s.peak_workers <= p.max_workers as usize, "{s:?}");
        // Grows for the day and shrinks for the night.
        assert!(s.scale_ups >= 1 && s.scale_downs >= 1, "{s:?}");
        // Below the day's 10 workers all day and above the night's 2: a
        // fleet that launched one lead ahead leaves next to nothing waiting
        // (a pod may wait for a step while the scheduler spreads).
        assert!(
            s.worker_hours > 2.0 * 24.0 && s.worker_hours < 10.0 * 24.0,
            "{s:?}"
        );
        assert!(s.pending_pod_minutes < 20.0, "{s:?}");
        // Never below min_workers: the night keeps two.
        let night = run(&config, &options(ScenarioKind::Idle), DAY);
        assert!(
            (night.worker_hours - f64::from(p.min_workers) * 24.0).abs() < 1.0,
            "{night:?}"
        );
    }

    #[test]
    fn where_max_workers_binds_the_oracle_too_leaves_pods_pending() {
        let mut config = Config::default();
        let free = run(&config, &options(ScenarioKind::FlashSale), DAY / 4);
        config.policy.max_workers = 6;
        let capped = run(&config, &options(ScenarioKind::FlashSale), DAY / 4);
        assert!(capped.peak_workers <= 6, "{capped:?}");
        assert!(
            capped.pending_pod_minutes > free.pending_pod_minutes + 100.0,
            "capped {capped:?} vs {free:?}"
        );
        assert!(capped.worker_hours < free.worker_hours, "{capped:?}");
    }
}
