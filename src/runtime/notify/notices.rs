//! Which notices a change makes: from an operation write this engine made
//! (so each start, end and circuit opening is told once, by its writer),
//! and from what each tick sees (the circuit closing, which a `resume`
//! from any host does; a reconciliation finding that was not there the
//! tick before).

use crate::engine::reconcile::Finding;
use crate::ports::{OpKind, OpPhase, OpRecord, Timestamp};
use std::collections::BTreeSet;

#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    /// Filled in by the notifier.
    pub cluster: String,
    pub kind: NoticeKind,
    pub at: Timestamp,
    pub op_id: Option<String>,
    pub text: String,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NoticeKind {
    Started,
    Done,
    Failed,
    Aborted,
    CircuitOpened,
    CircuitClosed,
    Finding,
}

impl NoticeKind {
    pub fn name(self) -> &'static str {
        match self {
            NoticeKind::Started => "operation_started",
            NoticeKind::Done => "operation_done",
            NoticeKind::Failed => "operation_failed",
            NoticeKind::Aborted => "operation_aborted",
            NoticeKind::CircuitOpened => "circuit_opened",
            NoticeKind::CircuitClosed => "circuit_closed",
            NoticeKind::Finding => "finding",
        }
    }
}

fn notice(kind: NoticeKind, at: Timestamp, op_id: Option<&str>, text: String) -> Notice {
    Notice {
        cluster: String::new(),
        kind,
        at,
        op_id: op_id.map(String::from),
        text,
    }
}

/// What this engine's accepted write from `before` to `after` tells.
pub fn of_write(before: &OpRecord, after: &OpRecord, at: Timestamp) -> Vec<Notice> {
    let mut out = Vec::new();
    if let Some(op) = &after.op {
        let previous = before.op.as_ref().filter(|b| b.id == op.id);
        let what = match &op.kind {
            OpKind::ScaleUp { count, .. } => format!("scale-up +{count} ({})", op.id),
            OpKind::ScaleDown { node, .. } => format!("scale-down of {node} ({})", op.id),
            other => format!("{} ({})", other.name(), op.id),
        };
        if previous.is_none() && op.is_in_flight() {
            let why = op.reasons.join("; ");
            out.push(notice(
                NoticeKind::Started,
                at,
                Some(&op.id),
                format!("{what} started: {why}"),
            ));
        } else if previous.is_some_and(|p| p.is_in_flight()) && !op.is_in_flight() {
            let (kind, verb) = match op.phase {
                OpPhase::Done => (NoticeKind::Done, "done"),
                OpPhase::Failed => (NoticeKind::Failed, "failed"),
                _ => (NoticeKind::Aborted, "aborted"),
            };
            let outcome = op.outcome.as_deref().unwrap_or("");
            out.push(notice(
                kind,
                at,
                Some(&op.id),
                format!("{what} {verb}: {outcome}"),
            ));
        }
    }
    if let Some(pause) = after.circuit_opened_since(before) {
        out.push(notice(
            NoticeKind::CircuitOpened,
            at,
            after.op.as_ref().map(|o| o.id.as_str()),
            format!(
                "circuit breaker opened, every engine paused until resumed: {}",
                pause.reason
            ),
        ));
    }
    out
}

/// What a tick sees, against the tick before.
#[derive(Debug, Default)]
pub struct TickNotices {
    circuit_open: Option<bool>,
    /// The findings of the last tick that read the record.
    findings: Option<BTreeSet<String>>,
}

impl TickNotices {
    /// `record`: the operation record this tick read (`None`: it could not,
    /// which says nothing); `findings`: this tick's reconciliation, `None`
    /// when it could not look (Kubernetes or EC2 Unknown: an empty list
    /// then is not "all resolved", and the next tick's would be news again).
    pub fn observe(
        &mut self,
        record: Option<&OpRecord>,
        findings: Option<&[Finding]>,
        at: Timestamp,
    ) -> Vec<Notice> {
        let Some(record) = record else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let open = record.paused_at(at).is_some_and(|p| p.circuit);
        if self.circuit_open == Some(true) && !open {
            out.push(notice(
                NoticeKind::CircuitClosed,
                at,
                None,
                "circuit breaker closed: the engines act again".into(),
            ));
        }
        self.circuit_open = Some(open);
        let Some(findings) = findings else {
            return out;
        };
        // The first tick's findings are news too: whoever starts the
        // engine hears what it found.
        let before = self.findings.take().unwrap_or_default();
        for f in findings.iter().filter(|f| !before.contains(&identity(f))) {
            out.push(notice(
                NoticeKind::Finding,
                at,
                None,
                format!("reconciliation, {}: {}", f.class(), f.describe()),
            ));
        }
        self.findings = Some(findings.iter().map(identity).collect());
        out
    }
}

/// A finding's class and subject: its words carry an age that changes
/// every tick.
fn identity(f: &Finding) -> String {
    let subject = match f {
        Finding::NeverJoined { instance, .. } | Finding::OrphanInstance { instance, .. } => {
            instance
        }
        Finding::GhostNode { node, .. } | Finding::StrayCordon { node } => node,
        Finding::OperationInstancesGone { op_id, .. } => op_id,
    };
    format!("{}:{subject}", f.class())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Pause;
    use std::time::Duration;

    const T: Timestamp = Timestamp(1_767_571_200_000);

    fn never_joined(instance: &str, age_secs: u64) -> Finding {
        Finding::NeverJoined {
            instance: instance.into(),
            age: Duration::from_secs(age_secs),
            op_id: Some("op-1".into()),
            console_tail: None,
            outside_selector: false,
        }
    }

    #[test]
    fn a_finding_is_news_once_however_its_age_grows() {
        let record = OpRecord::default();
        let mut ticks = TickNotices::default();
        let first = ticks.observe(Some(&record), Some(&[never_joined("i-1", 700)]), T);
        assert_eq!(first.len(), 1, "{first:?}");
        assert!(
            first[0].text.contains("i-1 launched 11m40s ago"),
            "{first:?}"
        );
        let later = ticks.observe(Some(&record), Some(&[never_joined("i-1", 715)]), T);
        assert_eq!(later, vec![]);
        // A tick that could not read the record, or could not look at the
        // cluster, says nothing and forgets nothing.
        assert_eq!(ticks.observe(None, Some(&[]), T), vec![]);
        assert_eq!(ticks.observe(Some(&record), None, T), vec![]);
        let more = ticks.observe(
            Some(&record),
            Some(&[never_joined("i-1", 730), never_joined("i-2", 700)]),
            T,
        );
        assert_eq!(more.len(), 1, "{more:?}");
        assert!(more[0].text.contains("i-2"), "{more:?}");
    }

    #[test]
    fn the_circuit_closing_is_told_once_and_a_persons_pause_is_not_the_circuit() {
        let pause = |circuit| OpRecord {
            pause: Some(Pause {
                by: "x".into(),
                reason: "r".into(),
                since: T,
                until: T.plus(Duration::from_secs(600)),
                circuit,
            }),
            ..OpRecord::default()
        };
        let mut ticks = TickNotices::default();
        assert_eq!(ticks.observe(Some(&pause(true)), Some(&[]), T), vec![]);
        let closed = ticks.observe(Some(&OpRecord::default()), Some(&[]), T);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].kind, NoticeKind::CircuitClosed);
        assert_eq!(
            ticks.observe(Some(&OpRecord::default()), Some(&[]), T),
            vec![]
        );
        ticks.observe(Some(&pause(false)), Some(&[]), T);
        assert_eq!(
            ticks.observe(Some(&OpRecord::default()), Some(&[]), T),
            vec![]
        );
        // Opened by a write: told by `of_write`, by its writer.
        let opened = of_write(&OpRecord::default(), &pause(true), T);
        assert_eq!(opened.len(), 1);
        assert_eq!(opened[0].kind, NoticeKind::CircuitOpened);
        assert_eq!(of_write(&OpRecord::default(), &pause(false), T), vec![]);
    }

    #[test]
    fn a_scale_down_is_told_when_it_starts_and_when_it_ends() {
        use crate::engine::operation::{Intent, start};
        use crate::ports::Origin;
        let intent = Intent::ScaleDown {
            node: "w3".into(),
            instance_id: "i-3".into(),
        };
        let started = start(
            &OpRecord::default(),
            &intent,
            "op-9",
            Origin::Engine,
            vec!["CPU 20% < 45%".into()],
            1,
            T,
        );
        let told = of_write(&OpRecord::default(), &started, T);
        assert_eq!(told.len(), 1);
        assert_eq!(told[0].kind, NoticeKind::Started);
        assert_eq!(told[0].op_id.as_deref(), Some("op-9"));
        assert!(
            told[0]
                .text
                .contains("scale-down of w3 (op-9) started: CPU 20% < 45%"),
            "{told:?}"
        );
        let mut done = started.clone();
        if let Some(op) = done.op.as_mut() {
            op.phase = OpPhase::Done;
            op.outcome = Some("w3 removed".into());
        }
        done.rev += 1;
        let told = of_write(&started, &done, T);
        assert_eq!(told.len(), 1);
        assert_eq!(told[0].kind, NoticeKind::Done);
        assert!(told[0].text.ends_with("done: w3 removed"), "{told:?}");
        // A write inside the operation (a step) tells nothing.
        let mut step = started.clone();
        if let Some(op) = step.op.as_mut() {
            op.phase = OpPhase::Draining;
        }
        assert_eq!(of_write(&started, &step, T), vec![]);
    }
}
