//! The node detail view (`d` on a worker, k9s's "describe"; `Enter` too
//! in read-only mode, where it applies nothing): everything the console
//! knows about one worker in one place — what it is, its standing for a
//! scale-down, its boot timeline, each pod with what a drain would do to
//! it, and, for a launch that never joined, the tail of its console
//! output. A pure function of the state, drawn by `ui/node_detail.rs`.

use super::App;
use crate::engine::drain_rules::{Disposition, classify};
use crate::engine::reconcile::Finding;
use crate::ports::format_duration;

#[derive(Clone, Debug, PartialEq)]
pub struct NodeDetail {
    pub title: String,
    /// `instance i-… · t3.large · eu-west-1a · Ready · 2h old`.
    pub facts: String,
    /// Its scale-down standing, when the view was known.
    pub standing: Option<String>,
    /// The boot timeline's steps, and this type and zone's percentiles.
    pub boot: Vec<String>,
    /// Each pod and what a drain does with it.
    pub pods: Vec<(String, PodFate)>,
    /// The last lines of the console output of an instance that never joined.
    pub console_tail: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum PodFate {
    Evicted,
    Ignored(&'static str),
    Blocks(String),
}

/// The detail of the worker row `instance_id` (or, for a node without
/// one, the row named `name`); `None` when it is no longer shown.
pub fn node_detail(app: &App, name: &str, instance_id: &str) -> Option<NodeDetail> {
    let snapshot = app.snapshot.as_ref()?;
    let row = snapshot
        .workers
        .iter()
        .find(|r| r.instance_id == instance_id && (instance_id != "-" || r.name == name))?;
    let now = snapshot.at;
    let state = match row.ready {
        Some(true) if row.cordoned => "Ready, cordoned",
        Some(true) => "Ready",
        Some(false) => "NotReady",
        None => "no node yet",
    };
    let facts = format!(
        "instance {} · {} · {} · {state} · {} old",
        row.instance_id,
        row.instance_type,
        row.zone,
        format_duration(now.since(row.created))
    );
    let mut boot = Vec::new();
    if let Some(t) = snapshot
        .boot
        .iter()
        .find(|t| t.instance_id == row.instance_id)
    {
        boot.push(format!(
            "launched {} by {} · {}",
            t.launched.to_rfc3339().get(11..19).unwrap_or(""),
            t.op_id,
            t.summary()
        ));
        if let Some(s) = snapshot
            .boot_stats
            .iter()
            .find(|s| s.instance_type == t.instance_type && s.zone == t.zone)
            && let Some((p50, p95)) = s.steps.get("total")
        {
            let d = |v: f64| format_duration(std::time::Duration::from_secs_f64(v.max(0.0)));
            boot.push(format!(
                "{} in {}: p50 {} · p95 {} over {} launch(es)",
                s.instance_type,
                s.zone,
                d(*p50),
                d(*p95),
                s.count
            ));
        }
    }
    let mut pods = Vec::new();
    if let Ok(view) = &snapshot.observation.cluster
        && row.ready.is_some()
    {
        for pod in view.pods_on(&row.name).filter(|p| !p.is_finished()) {
            let fate = match classify(pod, &view.pdbs, &app.settings.drain) {
                Disposition::Evict => PodFate::Evicted,
                Disposition::Ignore(why) => PodFate::Ignored(why),
                Disposition::Block(why) => PodFate::Blocks(why),
            };
            pods.push((pod.key(), fate));
        }
        pods.sort_by(|a, b| a.0.cmp(&b.0));
    }
    let console_tail = snapshot
        .findings
        .iter()
        .find_map(|f| match f {
            Finding::NeverJoined {
                instance,
                console_tail: Some(tail),
                ..
            } if *instance == row.instance_id => Some(tail.clone()),
            _ => None,
        })
        .map(|tail| {
            let lines: Vec<String> = tail.lines().map(String::from).collect();
            let from = lines.len().saturating_sub(CONSOLE_LINES);
            lines[from..].to_vec()
        })
        .unwrap_or_default();
    Some(NodeDetail {
        title: if row.ready.is_some() {
            row.name.clone()
        } else {
            row.instance_id.clone()
        },
        facts,
        standing: row.scale_down.as_ref().map(|s| s.text.clone()),
        boot,
        pods,
        console_tail,
    })
}

/// Console lines shown of a launch that never joined: where a cloud-init
/// or k3s-agent error usually is.
pub const CONSOLE_LINES: usize = 12;

#[cfg(test)]
#[path = "node_detail_tests.rs"]
mod tests;
