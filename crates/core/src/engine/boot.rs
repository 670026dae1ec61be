//! Boot timelines: where the minutes of a launch go. For each instance
//! this tool launched, `RunInstances` → `running` → node registered →
//! `Ready` → verified (its startup taint removed, taking pods), each
//! step's time; and, per instance type and zone, the median and 95th
//! percentile of each. No autoscaler shows this (awslabs'
//! node-latency-for-k8s exists because none does), and it is what tells a
//! slow AMI from a slow subnet from a slow join.
//!
//! Where a time comes from: the launch is EC2's `LaunchTime`; registered
//! is the node's `creationTimestamp`; Ready the `lastTransitionTime` of
//! its Ready condition; `running` and verified are the first tick that
//! saw them (EC2 keeps no time for the state change, Kubernetes none for
//! a taint's removal), so they are as precise as the tick interval. Pure:
//! `now` is an argument; the memory is the caller's, per process.

use super::observation::Observation;
use crate::ports::{InstanceState, Timestamp};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// Finished timelines kept for the percentiles: the newest.
pub const KEPT: usize = 512;
/// A launch first seen past `pending` and longer than this after its
/// `LaunchTime` is not timed: its early steps happened before this
/// process looked (an engine restarted, a console opened, a standby
/// took over), and timing it from the first sighting would put the
/// process's own start into `running` (a 40-minute "boot" in p95).
/// At least this, and two ticks at the engine's interval (a launch is
/// first seen on the tick after the one that launched it).
pub const WATCHED_WITHIN: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BootTimeline {
    pub instance_id: String,
    pub op_id: String,
    pub instance_type: String,
    pub zone: String,
    pub launched: Timestamp,
    pub running: Option<Timestamp>,
    pub registered: Option<Timestamp>,
    pub ready: Option<Timestamp>,
    pub verified: Option<Timestamp>,
}

/// The steps, each from the one before it (`total`: launch to verified).
pub const STEPS: [&str; 5] = ["running", "registered", "ready", "verified", "total"];

impl BootTimeline {
    /// How long each step took, by `STEPS` name, for the steps reached.
    pub fn durations(&self) -> Vec<(&'static str, Duration)> {
        let mut out = Vec::new();
        let mut from = self.launched;
        for (name, at) in [
            ("running", self.running),
            ("registered", self.registered),
            ("ready", self.ready),
            ("verified", self.verified),
        ] {
            if let Some(at) = at {
                // A step seen late (a tick after the next one happened)
                // counts as taking no time, never as negative.
                let at = at.max(from);
                out.push((name, at.since(from)));
                from = at;
            }
        }
        if let Some(v) = self.verified {
            out.push(("total", v.since(self.launched)));
        }
        out
    }

    /// `1m40s: running 35s · registered 20s · Ready 30s · verified 15s`.
    pub fn summary(&self) -> String {
        let steps: Vec<String> = self
            .durations()
            .into_iter()
            .filter(|(n, _)| *n != "total")
            .map(|(n, d)| {
                let n = if n == "ready" { "Ready" } else { n };
                format!("{n} {}", crate::ports::format_duration(d))
            })
            .collect();
        match self.verified {
            Some(v) => format!(
                "{}: {}",
                crate::ports::format_duration(v.since(self.launched)),
                steps.join(" · ")
            ),
            None if steps.is_empty() => "launched".into(),
            None => format!("booting: {}", steps.join(" · ")),
        }
    }
}

/// p50 and p95 of each step for one instance type in one zone.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BootStats {
    pub instance_type: String,
    pub zone: String,
    pub count: usize,
    /// Step name → (p50, p95) in seconds.
    pub steps: BTreeMap<&'static str, (f64, f64)>,
}

/// What one process has seen of its launches.
#[derive(Clone, Debug, Default)]
pub struct BootMemory {
    booting: BTreeMap<String, BootTimeline>,
    done: VecDeque<BootTimeline>,
    /// Two ticks (0 when unknown); `WATCHED_WITHIN` is the floor.
    two_ticks: Duration,
}

impl BootMemory {
    /// For an engine that ticks every `interval`.
    pub fn new(interval: Duration) -> BootMemory {
        BootMemory {
            two_ticks: interval * 2,
            ..BootMemory::default()
        }
    }

    /// Bring the timelines up to this observation; returns the ones that
    /// finished (verified) on it, for the histograms.
    pub fn observe(&mut self, obs: &Observation, now: Timestamp) -> Vec<BootTimeline> {
        let (Ok(view), Ok(fleet)) = (&obs.cluster, &obs.fleet) else {
            return Vec::new();
        };
        let mut finished = Vec::new();
        for i in fleet {
            let Some(op_id) = &i.op_id else { continue };
            if self.done.iter().any(|t| t.instance_id == i.id) {
                continue;
            }
            if !self.booting.contains_key(&i.id) {
                let watched = i.state == InstanceState::Pending
                    || now.since(i.launched_at) <= self.two_ticks.max(WATCHED_WITHIN);
                if !watched || !i.state.is_live() {
                    continue;
                }
                self.booting.insert(
                    i.id.clone(),
                    BootTimeline {
                        instance_id: i.id.clone(),
                        op_id: op_id.clone(),
                        instance_type: i.instance_type.clone(),
                        zone: i.zone.clone(),
                        launched: i.launched_at,
                        running: None,
                        registered: None,
                        ready: None,
                        verified: None,
                    },
                );
            }
            let Some(t) = self.booting.get_mut(&i.id) else {
                continue;
            };
            let node = view
                .nodes
                .iter()
                .find(|n| n.instance_id.as_deref() == Some(i.id.as_str()));
            if t.running.is_none() && (i.state == InstanceState::Running || node.is_some()) {
                t.running = Some(now);
            }
            if let Some(n) = node {
                t.registered.get_or_insert(n.created);
                if n.ready {
                    t.ready.get_or_insert(n.ready_since);
                    if !n.startup_taint {
                        t.verified = Some(now);
                    }
                }
            }
            if t.verified.is_some()
                && let Some(t) = self.booting.remove(&i.id)
            {
                finished.push(t.clone());
                self.done.push_back(t);
                while self.done.len() > KEPT {
                    self.done.pop_front();
                }
            }
        }
        // Gone before it was verified (never joined, terminated): not a
        // boot time, and not kept.
        self.booting
            .retain(|id, _| fleet.iter().any(|i| &i.id == id && i.state.is_live()));
        finished
    }

    /// Booting now, then the finished ones, newest first.
    pub fn timelines(&self) -> Vec<BootTimeline> {
        self.booting
            .values()
            .cloned()
            .chain(self.done.iter().rev().cloned())
            .collect()
    }

    pub fn of(&self, instance_id: &str) -> Option<&BootTimeline> {
        self.booting
            .get(instance_id)
            .or_else(|| self.done.iter().find(|t| t.instance_id == instance_id))
    }

    /// How long a launch takes to take pods here: the 95th percentile of
    /// launch → verified (its startup taint off; the scale-up ends then)
    /// over the finished timelines, all types and zones (the predictive
    /// pre-warm's lead); `None` before one finished.
    pub fn typical_boot(&self) -> Option<Duration> {
        let mut boots: Vec<Duration> = self
            .done
            .iter()
            .filter_map(|t| t.verified.or(t.ready).map(|r| r.since(t.launched)))
            .collect();
        if boots.is_empty() {
            return None;
        }
        boots.sort();
        let at = (boots.len() * 95).div_ceil(100).saturating_sub(1);
        boots.get(at).copied()
    }

    /// p50/p95 of each step over the finished timelines, per type and zone.
    pub fn stats(&self) -> Vec<BootStats> {
        stats(self.done.iter())
    }
}

/// What one look at the backends can tell of the launches there are (for
/// `status`, which has no memory): the launch (EC2), registered and Ready
/// (the node object; Ready only if its condition has not changed since,
/// so a flap since leaves it out), and verified when the operation that
/// launched it is the record's last and ended Done (its end is when its
/// nodes were verified). `running` is not kept by EC2: unknown here.
pub fn reconstruct(
    fleet: &[crate::ports::Instance],
    nodes: &[crate::ports::Node],
    record: &crate::ports::OpRecord,
) -> Vec<BootTimeline> {
    fleet
        .iter()
        .filter(|i| i.state.is_live())
        .filter_map(|i| {
            let op_id = i.op_id.clone()?;
            let node = nodes
                .iter()
                .find(|n| n.instance_id.as_deref() == Some(i.id.as_str()));
            let registered = node.map(|n| n.created);
            let ready = node
                .filter(|n| n.ready && n.ready_since >= n.created)
                .map(|n| n.ready_since);
            let verified = record
                .op
                .as_ref()
                .filter(|o| o.id == op_id && o.phase == crate::ports::OpPhase::Done)
                .filter(|_| node.is_some_and(|n| n.ready && !n.startup_taint))
                .map(|o| o.updated);
            Some(BootTimeline {
                instance_id: i.id.clone(),
                op_id,
                instance_type: i.instance_type.clone(),
                zone: i.zone.clone(),
                launched: i.launched_at,
                running: None,
                registered,
                ready,
                verified,
            })
        })
        .collect()
}

pub fn stats<'a>(timelines: impl Iterator<Item = &'a BootTimeline>) -> Vec<BootStats> {
    let mut groups: BTreeMap<(String, String), Vec<&BootTimeline>> = BTreeMap::new();
    for t in timelines.filter(|t| t.verified.is_some()) {
        groups
            .entry((t.instance_type.clone(), t.zone.clone()))
            .or_default()
            .push(t);
    }
    groups
        .into_iter()
        .map(|((instance_type, zone), ts)| {
            let mut steps = BTreeMap::new();
            for step in STEPS {
                let mut secs: Vec<f64> = ts
                    .iter()
                    .filter_map(|t| {
                        t.durations()
                            .into_iter()
                            .find(|(n, _)| *n == step)
                            .map(|(_, d)| d.as_secs_f64())
                    })
                    .collect();
                if secs.is_empty() {
                    continue;
                }
                secs.sort_by(f64::total_cmp);
                steps.insert(step, (percentile(&secs, 0.50), percentile(&secs, 0.95)));
            }
            BootStats {
                instance_type,
                zone,
                count: ts.len(),
                steps,
            }
        })
        .collect()
}

/// Nearest-rank percentile of sorted values.
pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
#[path = "boot/tests.rs"]
mod tests;
