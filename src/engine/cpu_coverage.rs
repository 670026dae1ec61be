//! Whether the average worker CPU is the whole fleet's (issue 14, item 6).
//! `avg()` over the workers that report silently covers only those: a
//! saturated node whose scrape times out drops out, the rest read low, and
//! a scale-down follows. So the average is only taken as known when the
//! per-node CPU has a series for every Ready worker old enough to have
//! been scraped; otherwise it is Unknown with the shortfall named.

use super::observation::ClusterView;
use crate::ports::{Reading, Timestamp};
use std::time::Duration;

/// How long a worker may be Ready before it must appear in the per-node
/// CPU: `rate()` over 2 minutes needs two scrapes, and a new node's first
/// scrape comes after it registers.
pub const CPU_REPORT_GRACE: Duration = Duration::from_secs(180);

/// `cpu` unless fewer workers report per-node CPU than there are Ready
/// workers older than the grace. `reporting`: how many per-node series the
/// metrics answered; `None` when it had none at all or failed (a per-node
/// query that does not match this fleet's metrics says nothing about
/// coverage, and must not blind the engine).
pub fn covering_workers(
    cpu: Reading,
    reporting: Option<usize>,
    view: &ClusterView,
    now: Timestamp,
) -> Reading {
    let Reading::Known { .. } = cpu else {
        return cpu;
    };
    let Some(reporting) = reporting.filter(|n| *n > 0) else {
        return cpu;
    };
    let expected = view
        .nodes
        .iter()
        .filter(|n| n.ready && now.since(n.created) > CPU_REPORT_GRACE)
        .count();
    if reporting >= expected {
        return cpu;
    }
    Reading::unknown(format!(
        "worker CPU covers {reporting} of {expected} Ready workers: the average of the rest could read low (a saturated node whose scrape fails drops out)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testkit;

    #[test]
    fn a_worker_missing_from_the_per_node_cpu_makes_the_average_unknown() {
        let now = testkit::at(0);
        let obs = testkit::cluster(4, 20.0, now);
        let view = obs.cluster.clone().expect("view");
        let cpu = Reading::Known {
            value: 20.0,
            at: now,
        };
        // Every Ready worker reports: known.
        assert_eq!(covering_workers(cpu.clone(), Some(4), &view, now), cpu);
        // One is missing: unknown, saying so.
        match covering_workers(cpu.clone(), Some(3), &view, now) {
            Reading::Unknown { reason } => assert!(reason.contains("3 of 4"), "{reason}"),
            known => panic!("{known:?}"),
        }
        // No per-node answer at all says nothing about coverage.
        assert_eq!(covering_workers(cpu.clone(), None, &view, now), cpu);
        assert_eq!(covering_workers(cpu.clone(), Some(0), &view, now), cpu);
        // A worker that only just registered may be missing.
        let mut young = view.clone();
        young.nodes[0].created = now;
        assert_eq!(covering_workers(cpu.clone(), Some(3), &young, now), cpu);
        // An Unknown stays what it was.
        let blind = Reading::unknown("no data");
        assert_eq!(covering_workers(blind.clone(), Some(0), &view, now), blind);
    }
}
