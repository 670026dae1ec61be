//! Whether the average worker CPU is the whole fleet's.
//! `avg()` over the workers that report silently covers only those: a
//! saturated node whose scrape times out drops out, the rest read low, and
//! a scale-down would follow. So when the per-node CPU misses a Ready
//! worker old enough to have been scraped, the average is marked partial:
//! it cannot show the fleet idle (no scale-down rests on it), and nothing
//! else is held, so pending pods still get their workers.

use super::observation::ClusterView;
use crate::ports::Timestamp;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a worker may be Ready before it must appear in the per-node
/// CPU: `rate()` over 2 minutes needs two scrapes, and a new node's
/// exporter starts after it registers.
pub const CPU_REPORT_GRACE: Duration = Duration::from_secs(180);

/// Why the average misses Ready workers, or `None` when it covers them.
/// `per_node`: the per-node CPU by its `node` label; an empty or failed
/// answer says nothing about coverage (a per-node query that does not
/// match this fleet's metrics must not block scale-downs for good). Nodes
/// are matched by name; when no label matches any node name (a relabeling
/// that uses something else), by count.
pub fn shortfall(
    per_node: Option<&BTreeMap<String, f64>>,
    view: &ClusterView,
    now: Timestamp,
) -> Option<String> {
    let per_node = per_node.filter(|m| !m.is_empty())?;
    let expected: Vec<&str> = view
        .nodes
        .iter()
        // From the Ready transition, not creation: a node back from a flap
        // has no fresh `rate()` yet either.
        .filter(|n| n.ready && now.since(n.ready_since) > CPU_REPORT_GRACE)
        .map(|n| n.name.as_str())
        .collect();
    let by_name = view.nodes.iter().any(|n| per_node.contains_key(&n.name));
    if by_name {
        let missing: Vec<&str> = expected
            .iter()
            .copied()
            .filter(|n| !per_node.contains_key(*n))
            .collect();
        if missing.is_empty() {
            return None;
        }
        let shown: Vec<&str> = missing.iter().copied().take(3).collect();
        return Some(format!(
            "worker CPU covers {} of {} Ready workers (no CPU from {}{}): the average of the rest may read low",
            expected.len() - missing.len(),
            expected.len(),
            shown.join(", "),
            if missing.len() > 3 { ", …" } else { "" }
        ));
    }
    (per_node.len() < expected.len()).then(|| {
        format!(
            "worker CPU covers {} of {} Ready workers: the average of the rest may read low",
            per_node.len(),
            expected.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testkit;

    #[test]
    fn a_worker_missing_from_the_per_node_cpu_is_named() {
        let now = testkit::at(0);
        let view = testkit::cluster(4, 20.0, now).cluster.expect("view");
        let names: Vec<String> = view.nodes.iter().map(|n| n.name.clone()).collect();
        let all: BTreeMap<String, f64> = names.iter().map(|n| (n.clone(), 20.0)).collect();
        assert_eq!(shortfall(Some(&all), &view, now), None);
        let mut three = all.clone();
        three.remove(&names[1]);
        let why = shortfall(Some(&three), &view, now).expect("a shortfall");
        assert!(why.contains("3 of 4") && why.contains(&names[1]), "{why}");
        // No per-node answer at all says nothing about coverage.
        assert_eq!(shortfall(None, &view, now), None);
        assert_eq!(shortfall(Some(&BTreeMap::new()), &view, now), None);
        // A worker that only just turned Ready (registered, or back from
        // a flap however old it is) may be missing; once the grace has
        // passed since that transition, it may not.
        let mut back = view.clone();
        back.nodes[1].ready_since = now;
        assert_eq!(shortfall(Some(&three), &back, now), None);
        let later = now.plus(CPU_REPORT_GRACE + Duration::from_secs(1));
        assert!(shortfall(Some(&three), &back, later).is_some());
        // Labels that are not node names: by count.
        let other: BTreeMap<String, f64> =
            (0..3).map(|i| (format!("10.0.0.{i}:9100"), 20.0)).collect();
        let why = shortfall(Some(&other), &view, now).expect("by count");
        assert!(why.contains("3 of 4"), "{why}");
    }
}
