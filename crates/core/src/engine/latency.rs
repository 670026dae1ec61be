//! How long the pods a scale-up answers had waited when it was called:
//! from the oldest one's `PodScheduled=False` transition (the scheduler
//! giving up on it) to the launch, the figure the Cluster Autoscaler's
//! FAQ states its scale-up latency in.

use super::observation::Observation;
use super::settings::Settings;
use super::sizing;
use crate::ports::Timestamp;
use std::collections::VecDeque;
use std::time::Duration;

/// Samples kept per figure: the recent past, not the process's life.
const KEPT: usize = 64;

/// p50 and p95 of the recent samples, and the last one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Percentiles {
    pub p50: Duration,
    pub p95: Duration,
    pub last: Duration,
    pub count: usize,
}

/// What the console's operation panel and `status` show.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LatencySummary {
    /// Oldest triggering pod unschedulable → the scale-up's launch.
    pub scale_up: Option<Percentiles>,
    /// Node Ready → the engine verified it (removed the startup taint).
    pub verify: Option<Percentiles>,
}

/// The last `KEPT` latencies of each kind this process measured.
#[derive(Clone, Debug, Default)]
pub struct LatencyMemory {
    scale_up: VecDeque<Duration>,
    verify: VecDeque<Duration>,
}

fn push(q: &mut VecDeque<Duration>, d: Duration) {
    if q.len() == KEPT {
        q.pop_front();
    }
    q.push_back(d);
}

fn percentiles(q: &VecDeque<Duration>) -> Option<Percentiles> {
    let last = *q.back()?;
    let mut sorted: Vec<f64> = q.iter().map(Duration::as_secs_f64).collect();
    sorted.sort_by(f64::total_cmp);
    let at = |p| Duration::from_secs_f64(super::boot::percentile(&sorted, p));
    Some(Percentiles {
        p50: at(0.5),
        p95: at(0.95),
        last,
        count: q.len(),
    })
}

impl LatencyMemory {
    pub fn scale_up(&mut self, d: Duration) {
        push(&mut self.scale_up, d);
    }

    pub fn verify(&mut self, d: Duration) {
        push(&mut self.verify, d);
    }

    pub fn summary(&self) -> LatencySummary {
        LatencySummary {
            scale_up: percentiles(&self.scale_up),
            verify: percentiles(&self.verify),
        }
    }
}

/// When the wait a scale-up answers began: the oldest pending pod a new
/// worker could take. Pods no worker type could hold are not counted
/// (they do not trigger it and would wait for ever); `None` when no pod
/// triggered it (a CPU scale-up) or the pods could not be read.
pub fn scale_up_wait_began(settings: &Settings, obs: &Observation) -> Option<Timestamp> {
    let view = obs.cluster.as_ref().ok()?;
    let helpable = sizing::pending(settings, view).helpable;
    // A transition time the server left out reads as the epoch, and one
    // ahead of our clock says nothing: neither is a wait.
    helpable
        .iter()
        .filter_map(|p| p.unschedulable_since)
        .filter(|since| since.0 > 0 && *since <= obs.at)
        .min()
}

/// When the next pending pod's window (`policy.pending_for`) ends, if it
/// is still ahead: the engine ticks then instead of at its next interval,
/// so a window of 10 s means 10 s, not 10 s plus up to a tick.
pub fn next_window_end(
    settings: &Settings,
    obs: &Observation,
    now: Timestamp,
) -> Option<Timestamp> {
    let view = obs.cluster.as_ref().ok()?;
    let helpable = sizing::pending(settings, view).helpable;
    let window = i64::try_from(settings.policy.pending_for.as_millis()).ok()?;
    helpable
        .iter()
        .filter_map(|p| p.unschedulable_since)
        .map(|since| Timestamp(since.0.saturating_add(window)))
        .filter(|end| *end > now)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testkit::{cluster, pending_pod};

    #[test]
    fn the_oldest_pod_a_worker_could_take_starts_the_wait() {
        let settings = Settings::default();
        let now = Timestamp(1_000_000);
        let mut obs = cluster(3, 50.0, now);
        assert_eq!(scale_up_wait_began(&settings, &obs), None);
        let view = obs.cluster.as_mut().unwrap();
        view.pods
            .push(pending_pod("web-x", 500, Timestamp(now.0 - 8_000)));
        view.pods
            .push(pending_pod("web-y", 500, Timestamp(now.0 - 3_000)));
        // Older, but no worker type can hold 64 CPUs: not the scale-up's.
        view.pods
            .push(pending_pod("huge", 64_000, Timestamp(now.0 - 60_000)));
        assert_eq!(
            scale_up_wait_began(&settings, &obs),
            Some(Timestamp(now.0 - 8_000))
        );
        // An unknown transition time (the epoch) is no wait.
        let view = obs.cluster.as_mut().unwrap();
        view.pods.push(pending_pod("unknown", 500, Timestamp(0)));
        assert_eq!(
            scale_up_wait_began(&settings, &obs),
            Some(Timestamp(now.0 - 8_000))
        );
        obs.cluster = Err("listing pods: down".into());
        assert_eq!(scale_up_wait_began(&settings, &obs), None);
    }

    #[test]
    fn the_next_window_to_end_is_the_youngest_pod_still_inside_it() {
        let mut settings = Settings::default();
        settings.policy.pending_for = Duration::from_secs(60);
        let now = Timestamp(1_000_000);
        let mut obs = cluster(3, 50.0, now);
        let view = obs.cluster.as_mut().unwrap();
        // Past its window already (the tick decides on it now), inside
        // it (ends in 20 s), and too big for any worker.
        view.pods
            .push(pending_pod("old", 500, Timestamp(now.0 - 90_000)));
        view.pods
            .push(pending_pod("new", 500, Timestamp(now.0 - 40_000)));
        view.pods
            .push(pending_pod("huge", 64_000, Timestamp(now.0 - 50_000)));
        assert_eq!(
            next_window_end(&settings, &obs, now),
            Some(Timestamp(now.0 + 20_000))
        );
        obs.cluster
            .as_mut()
            .unwrap()
            .pods
            .retain(|p| p.name != "new");
        assert_eq!(next_window_end(&settings, &obs, now), None);
    }

    #[test]
    fn percentiles_are_of_the_recent_samples() {
        let mut m = LatencyMemory::default();
        assert_eq!(m.summary(), LatencySummary::default());
        for s in 1..=100u64 {
            m.scale_up(Duration::from_secs(s));
        }
        m.verify(Duration::from_secs(2));
        let s = m.summary();
        let up = s.scale_up.unwrap();
        // Only the last 64 (37..=100) are kept.
        assert_eq!(up.count, 64);
        assert_eq!(up.p50, Duration::from_secs(68));
        assert_eq!(up.p95, Duration::from_secs(97));
        assert_eq!(up.last, Duration::from_secs(100));
        assert_eq!(s.verify.unwrap().p95, Duration::from_secs(2));
    }
}
