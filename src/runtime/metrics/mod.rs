//! The engine's own metrics (`--metrics-addr`): what it decided, what it
//! did, how long each operation phase took, the lock, and the backends as
//! the last tick saw them. Updated by the tick loop and the executor,
//! read by the HTTP server in `server.rs`; the engine itself knows nothing
//! of them.

mod exposition;
pub mod server;

use crate::engine::TickReport;
use crate::engine::decision::Action;
use crate::ports::{OpPhase, OpRecord, Reading, Timestamp};
use exposition::{Exposition, Histogram};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const BACKENDS: [&str; 4] = ["dynamodb", "ec2", "kubernetes", "prometheus"];

#[derive(Default)]
pub struct EngineMetrics {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    ticks: u64,
    /// Ticks brought forward by a watch's wake (`Engine::until_next_tick`).
    wakes: u64,
    /// Unschedulable → launch, and Ready → verified (`engine/latency.rs`).
    scale_up_latency: Histogram,
    verify_latency: Histogram,
    latency: crate::engine::latency::LatencyMemory,
    decisions: BTreeMap<String, f64>,
    operations: BTreeMap<(String, String), f64>,
    phases: BTreeMap<String, Histogram>,
    /// Boot steps of launches this process watched, by type, zone, step.
    boots: BTreeMap<Vec<(&'static str, String)>, Histogram>,
    lock_held: bool,
    lock_acquisitions: u64,
    lock_losses: u64,
    backend_errors: BTreeMap<String, f64>,
    backend_up: BTreeMap<String, f64>,
    cpu: Option<f64>,
    unschedulable: Option<usize>,
    workers: BTreeMap<String, f64>,
    nodes: BTreeMap<String, f64>,
    findings: BTreeMap<String, f64>,
    paused: bool,
    last_tick_unix: Option<f64>,
    /// Real time of the last tick, for `/healthz` (simulated time in
    /// `--demo` says nothing about whether the process is alive).
    last_tick: Option<Instant>,
    /// Why each unreachable backend was, at the last tick.
    unreachable: Vec<String>,
    /// The phase this engine last wrote, and since when: a duration is
    /// only measured for phases whose start this engine saw.
    phase_entered: Option<(String, OpPhase, Timestamp)>,
    /// Attempts in a row to start or advance an operation that failed,
    /// and the last failure's words.
    consecutive_failures: u32,
    last_failure: Option<String>,
    /// Ticks held by the sanity stop, and the last one's reason while it lasts.
    sanity_stops: u64,
    sanity_stop: Option<String>,
    /// Times this engine's writes opened the circuit breaker.
    circuit_opened: u64,
    /// The last tick saw the circuit breaker's pause in force (whoever
    /// opened it: every engine shows it).
    circuit_open: bool,
    /// The notifier's counts, when `[notify]` is on.
    notify: Option<std::sync::Arc<super::notify::NotifyStats>>,
    events: Option<std::sync::Arc<super::events::EventStats>>,
    /// That many in a row make `/healthz` unhealthy (`engine.unhealthy_after`).
    failure_limit: Option<u32>,
}

/// `engine.unhealthy_after`'s default.
pub const DEFAULT_FAILURE_LIMIT: u32 = 3;

/// The outcome label of a decision: its kind, never its arguments (a
/// label per node name would grow without bound).
fn outcome(action: &Action) -> &'static str {
    match action {
        Action::Hold => "hold",
        Action::ScaleUp { .. } => "scale_up",
        Action::ScaleDown { .. } => "scale_down",
        Action::TerminateStrays { .. } => "terminate_strays",
    }
}

impl EngineMetrics {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding it left plain numbers behind,
        // still fit to export.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_notify_stats(&self, stats: std::sync::Arc<super::notify::NotifyStats>) {
        self.lock().notify = Some(stats);
    }

    /// Launches that were verified on this tick (`engine/boot.rs`).
    pub fn record_boots(&self, finished: &[crate::engine::boot::BootTimeline]) {
        if finished.is_empty() {
            return;
        }
        let mut m = self.lock();
        for t in finished {
            for (step, d) in t.durations() {
                let key = vec![
                    ("instance_type", t.instance_type.clone()),
                    ("zone", t.zone.clone()),
                    ("step", step.to_string()),
                ];
                m.boots.entry(key).or_default().observe(d.as_secs_f64());
            }
        }
    }

    /// A watch woke the engine before its interval.
    pub fn record_wake(&self) {
        self.lock().wakes += 1;
    }

    /// A scale-up launched, its oldest triggering pod unschedulable for `d`.
    pub fn record_scale_up_latency(&self, d: std::time::Duration) {
        let mut m = self.lock();
        m.scale_up_latency.observe(d.as_secs_f64());
        m.latency.scale_up(d);
    }

    /// A node verified (its startup taint removed), Ready for `d`.
    pub fn record_verify_latency(&self, d: std::time::Duration) {
        let mut m = self.lock();
        m.verify_latency.observe(d.as_secs_f64());
        m.latency.verify(d);
    }

    /// The recent latencies' percentiles.
    pub fn latency(&self) -> crate::engine::latency::LatencySummary {
        self.lock().latency.summary()
    }

    pub fn set_event_stats(&self, stats: std::sync::Arc<super::events::EventStats>) {
        self.lock().events = Some(stats);
    }

    /// How many failed attempts in a row make `/healthz` answer 503.
    pub fn set_failure_limit(&self, limit: u32) {
        self.lock().failure_limit = Some(limit.max(1));
    }

    /// After every tick: the decision, the backends, the gauges.
    pub fn record_tick(&self, report: &TickReport) {
        let mut m = self.lock();
        m.ticks += 1;
        if let Some(exec) = &report.exec {
            match &exec.error {
                Some(failure) => {
                    m.consecutive_failures += 1;
                    m.last_failure = Some(format!("{}: {failure}", failure.backend));
                    *m.backend_errors
                        .entry(failure.backend.to_string())
                        .or_default() += 1.0;
                }
                // An attempt that went through (or found the lock busy) ends
                // the streak; a tick that did not try says nothing.
                None => {
                    m.consecutive_failures = 0;
                    m.last_failure = None;
                }
            }
        }
        *m.decisions
            .entry(outcome(&report.decision.action).into())
            .or_default() += 1.0;
        // A blind tick (a backend Unknown) says nothing about the view's
        // plausibility: the last verdict stands until a tick that saw.
        let obs = &report.observation;
        if obs.cluster.is_ok() && obs.fleet.is_ok() {
            m.sanity_stop = report.decision.sanity_stop.clone();
        }
        if report.decision.sanity_stop.is_some() {
            m.sanity_stops += 1;
        }
        let errors = [
            ("dynamodb", report.state.as_ref().err().cloned()),
            ("ec2", obs.fleet.as_ref().err().cloned()),
            ("kubernetes", obs.cluster.as_ref().err().cloned()),
            (
                "prometheus",
                match &obs.cpu {
                    Reading::Known { .. } => None,
                    Reading::Unknown { reason } => Some(reason.clone()),
                },
            ),
        ];
        m.unreachable.clear();
        for (backend, error) in errors {
            m.backend_up
                .insert(backend.into(), if error.is_some() { 0.0 } else { 1.0 });
            if let Some(e) = error {
                *m.backend_errors.entry(backend.into()).or_default() += 1.0;
                m.unreachable.push(format!("{backend}: {e}"));
            }
        }
        m.cpu = match &obs.cpu {
            Reading::Known { value, .. } => Some(*value),
            Reading::Unknown { .. } => None,
        };
        m.unschedulable = obs.cluster.as_ref().ok().map(|v| v.unschedulable().len());
        if let Ok(fleet) = &obs.fleet {
            m.workers.clear();
            for i in fleet {
                *m.workers.entry(i.state.as_str().into()).or_default() += 1.0;
            }
        }
        if let Ok(view) = &obs.cluster {
            m.nodes.clear();
            for n in &view.nodes {
                let state = if n.cordoned {
                    "cordoned"
                } else if n.ready {
                    "ready"
                } else {
                    "not_ready"
                };
                *m.nodes.entry(state.into()).or_default() += 1.0;
            }
        }
        m.findings.clear();
        for f in &report.findings {
            *m.findings.entry(f.class().replace(' ', "_")).or_default() += 1.0;
        }
        let pause = report
            .state
            .as_ref()
            .ok()
            .and_then(|s| s.record.paused_at(report.at));
        m.paused = pause.is_some();
        m.circuit_open = pause.is_some_and(|p| p.circuit);
        m.last_tick_unix = Some(report.at.0 as f64 / 1000.0);
        m.last_tick = Some(Instant::now());
    }

    pub fn lock_acquired(&self) {
        let mut m = self.lock();
        m.lock_acquisitions += 1;
        m.lock_held = true;
    }

    pub fn lock_released(&self) {
        self.lock().lock_held = false;
    }

    /// The lease could not be kept (renewal refused or its deadline came):
    /// the engine stopped acting before the lock was released.
    pub fn lock_lost(&self) {
        self.lock().lock_losses += 1;
    }

    /// After every fenced write of the operation record this engine made.
    pub fn record_write(&self, before: &OpRecord, after: &OpRecord) {
        let Some(op) = &after.op else { return };
        let mut m = self.lock();
        if after.circuit_opened_since(before).is_some() {
            m.circuit_opened += 1;
        }
        let previous = before.op.as_ref().filter(|b| b.id == op.id);
        let phase_changed = previous.is_none_or(|b| b.phase != op.phase);
        if !phase_changed {
            return;
        }
        if let Some((id, phase, since)) = m.phase_entered.take()
            && id == op.id
            && phase != op.phase
        {
            m.phases
                .entry(phase.as_str().into())
                .or_default()
                .observe(op.updated.since(since).as_secs_f64());
        }
        if op.phase.is_terminal() {
            if previous.is_some_and(|b| !b.phase.is_terminal()) || previous.is_none() {
                let result = op.phase.as_str().to_ascii_lowercase();
                *m.operations
                    .entry((op.kind.name().into(), result))
                    .or_default() += 1.0;
            }
        } else {
            m.phase_entered = Some((op.id.clone(), op.phase, op.updated));
        }
    }

    /// `Ok(why)` while the last tick is younger than `max_age` and every
    /// backend answered it; `Err(why)` otherwise.
    pub fn health(&self, max_age: Duration) -> Result<String, String> {
        let m = self.lock();
        let Some(last) = m.last_tick else {
            return Err("no tick yet".into());
        };
        let age = last.elapsed();
        if age > max_age {
            return Err(format!(
                "last tick {}s ago (more than {}s)",
                age.as_secs(),
                max_age.as_secs()
            ));
        }
        if !m.unreachable.is_empty() {
            return Err(format!("unreachable: {}", m.unreachable.join("; ")));
        }
        // Degraded, not down: the process is fine and restarting it would
        // change nothing (a watchdog must not kill it); the body says why.
        if let Some(why) = &m.sanity_stop {
            return Ok(format!("degraded: sanity stop: {why}"));
        }
        let limit = m.failure_limit.unwrap_or(DEFAULT_FAILURE_LIMIT);
        if m.consecutive_failures >= limit {
            return Err(format!(
                "{} attempts in a row to start or advance an operation failed; last: {}",
                m.consecutive_failures,
                m.last_failure.as_deref().unwrap_or("?")
            ));
        }
        Ok(format!("ok: last tick {}s ago", age.as_secs()))
    }

    /// The exposition of every family, in a stable order.
    pub fn render(&self) -> String {
        let m = self.lock();
        let mut e = Exposition::default();
        let p = "k3s_autoscaler";
        e.scalar(
            &format!("{p}_ticks_total"),
            "counter",
            "Engine ticks run.",
            m.ticks as f64,
        );
        e.scalar(
            &format!("{p}_wakes_total"),
            "counter",
            "Ticks brought forward by a change a watch saw (a pod turning unschedulable, a node Ready or NotReady, a pod leaving a cordoned node).",
            m.wakes as f64,
        );
        e.labelled(
            &format!("{p}_decisions_total"),
            "counter",
            "Decisions by outcome.",
            "outcome",
            &m.decisions,
            &["hold", "scale_up", "scale_down", "terminate_strays"],
        );
        e.pairs(
            &format!("{p}_operations_total"),
            "counter",
            "Operations this engine ended, by kind and result (done, failed, aborted).",
            ("kind", "result"),
            &m.operations,
        );
        e.histograms(
            &format!("{p}_operation_phase_duration_seconds"),
            "Time operations spent in each phase, for phases this engine saw start and end.",
            "phase",
            &m.phases,
        );
        e.histograms_by(
            &format!("{p}_boot_seconds"),
            "Each step of a launch this engine watched (running, registered, ready, verified: each from the one before; total: launch to verified), by instance type and zone.",
            &m.boots,
        );
        let single = |h: &Histogram| BTreeMap::from([(Vec::new(), h.clone())]);
        e.histograms_by(
            &format!("{p}_scale_up_latency_seconds"),
            "From the oldest triggering pod's PodScheduled=False transition to the scale-up's launch (RunInstances), per scale-up this engine started.",
            &single(&m.scale_up_latency),
        );
        e.histograms_by(
            &format!("{p}_verify_latency_seconds"),
            "From a new node's Ready transition to this engine verifying it (its startup taint removed).",
            &single(&m.verify_latency),
        );
        e.scalar(
            &format!("{p}_lock_held"),
            "gauge",
            "1 while this engine holds the DynamoDB lock.",
            if m.lock_held { 1.0 } else { 0.0 },
        );
        e.scalar(
            &format!("{p}_sanity_stops_total"),
            "counter",
            "Ticks on which the view was implausible and nothing destructive ran (the sanity stop).",
            m.sanity_stops as f64,
        );
        e.scalar(
            &format!("{p}_circuit_opened_total"),
            "counter",
            "Times this engine's writes opened the circuit breaker (it pauses the cluster until resumed).",
            m.circuit_opened as f64,
        );
        e.scalar(
            &format!("{p}_lock_acquisitions_total"),
            "counter",
            "Times this engine took the lock.",
            m.lock_acquisitions as f64,
        );
        e.scalar(
            &format!("{p}_lock_losses_total"),
            "counter",
            "Times this engine lost its lease while holding the lock.",
            m.lock_losses as f64,
        );
        e.labelled(
            &format!("{p}_backend_errors_total"),
            "counter",
            "Ticks on which a backend was unreachable or its answer unusable, and attempts it refused to start or advance an operation.",
            "backend",
            &m.backend_errors,
            &BACKENDS,
        );
        e.labelled(
            &format!("{p}_backend_up"),
            "gauge",
            "1 if the backend answered the last tick.",
            "backend",
            &m.backend_up,
            &[],
        );
        if let Some(cpu) = m.cpu {
            e.scalar(
                &format!("{p}_worker_cpu_percent"),
                "gauge",
                "Average worker CPU at the last tick (absent while Unknown).",
                cpu,
            );
        }
        if let Some(n) = m.unschedulable {
            e.scalar(
                &format!("{p}_unschedulable_pods"),
                "gauge",
                "Unschedulable pods at the last tick (absent while Unknown).",
                n as f64,
            );
        }
        e.labelled(
            &format!("{p}_workers"),
            "gauge",
            "Managed worker instances by EC2 state.",
            "state",
            &m.workers,
            &["pending", "running"],
        );
        e.labelled(
            &format!("{p}_nodes"),
            "gauge",
            "Worker nodes by state.",
            "state",
            &m.nodes,
            &["ready", "not_ready", "cordoned"],
        );
        e.labelled(
            &format!("{p}_reconciliation_findings"),
            "gauge",
            "Reconciliation findings at the last tick, by class.",
            "class",
            &m.findings,
            &[],
        );
        e.scalar(
            &format!("{p}_consecutive_failed_attempts"),
            "gauge",
            "Attempts in a row to start or advance an operation that failed.",
            f64::from(m.consecutive_failures),
        );
        e.scalar(
            &format!("{p}_paused"),
            "gauge",
            "1 while a cluster-wide pause is in force.",
            if m.paused { 1.0 } else { 0.0 },
        );
        if let Some(stats) = &m.notify {
            let (sent, dropped, failed) = stats.counts();
            for (name, help, value) in [
                ("sent", "Notices the webhook accepted.", sent),
                (
                    "dropped",
                    "Notices dropped because the queue was full (the webhook slow or down).",
                    dropped,
                ),
                (
                    "failed",
                    "Notices given up after the last attempt or refused by the webhook.",
                    failed,
                ),
            ] {
                e.scalar(
                    &format!("{p}_notifications_{name}_total"),
                    "counter",
                    help,
                    value as f64,
                );
            }
        }
        if let Some(stats) = &m.events {
            let (written, dropped, failed) = stats.counts();
            for (name, help, value) in [
                ("written", "Kubernetes Events created or bumped.", written),
                (
                    "dropped",
                    "Kubernetes Events not written: the queue was full or the rate limit spent.",
                    dropped,
                ),
                (
                    "failed",
                    "Kubernetes Event writes the API server refused or did not answer.",
                    failed,
                ),
            ] {
                e.scalar(
                    &format!("{p}_events_{name}_total"),
                    "counter",
                    help,
                    value as f64,
                );
            }
        }
        e.scalar(
            &format!("{p}_circuit_open"),
            "gauge",
            "1 while the pause in force is the circuit breaker's.",
            if m.circuit_open { 1.0 } else { 0.0 },
        );
        if let Some(t) = m.last_tick_unix {
            e.scalar(
                &format!("{p}_last_tick_timestamp_seconds"),
                "gauge",
                "When the last tick ran (the run's clock).",
                t,
            );
        }
        e.finish()
    }
}

#[cfg(test)]
mod tests;
