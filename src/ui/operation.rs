//! The lock and the operation in flight (or the last one): owner, fence,
//! lease, phase, the steps done with their times, the deadline.

use super::theme::Theme;
use super::{age, block};
use crate::app::{App, Focus};
use crate::ports::{OpKind, format_duration};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

pub fn render(frame: &mut Frame, area: Rect, app: &App, t: &Theme) {
    let mut lines: Vec<Line> = Vec::new();
    let label = |s: &str| Span::styled(format!("{s:<9}"), t.dim);
    let snapshot = app.snapshot.as_ref();
    match snapshot.and_then(|s| s.lock.as_ref()) {
        Some(l) => {
            let held = l.is_held_at(app.now);
            lines.push(Line::from(vec![
                label("owner"),
                if held {
                    Span::styled(l.owner.clone(), t.warn)
                } else {
                    Span::styled("free", t.ok)
                },
            ]));
            lines.push(Line::from(vec![
                label("fence"),
                Span::styled(l.fence.to_string(), t.text),
                Span::styled("   lease left ", t.dim),
                Span::styled(
                    if held {
                        format_duration(l.until.since(app.now))
                    } else {
                        "-".into()
                    },
                    if held { t.warn } else { t.text },
                ),
            ]));
        }
        None => lines.push(Line::from(vec![
            label("lock"),
            Span::styled("never taken", t.text),
        ])),
    }
    if let Some((at, failure)) = &app.last_failure {
        lines.push(Line::from(vec![
            label("failed"),
            Span::styled(
                format!("{} ago, {}: {failure}", age(app.now, *at), failure.backend),
                t.bad,
            ),
        ]));
    }
    if let Some(error) = snapshot.and_then(|s| s.state_error.as_ref()) {
        lines.push(Line::from(Span::styled(
            format!("state table Unknown: {error}"),
            t.bad,
        )));
    }
    if let Some(line) = snapshot.and_then(|s| latency_line(&s.latency, &label, t)) {
        lines.push(line);
    }
    let op = snapshot
        .and_then(|s| s.record.as_ref())
        .and_then(|r| r.op.as_ref());
    match op {
        None => lines.push(Line::from(Span::styled("no operation yet", t.dim))),
        Some(op) => {
            let phase_style = match op.phase {
                crate::ports::OpPhase::Done => t.ok,
                crate::ports::OpPhase::Failed | crate::ports::OpPhase::Aborted => t.bad,
                _ => t.warn,
            };
            let what = match &op.kind {
                OpKind::ScaleUp { count, .. } => format!("scale-up +{count}"),
                OpKind::ScaleDown { node, .. } => format!("scale-down {node}"),
                OpKind::Cordon { node, cordon } => {
                    format!("{} {node}", if *cordon { "cordon" } else { "uncordon" })
                }
                OpKind::TerminateStrays { instances, .. } => {
                    format!("terminate {}", instances.join(", "))
                }
                OpKind::DeleteGhost { node } => format!("delete ghost {node}"),
            };
            lines.push(Line::from(vec![
                label("op"),
                Span::styled(format!("{} ", op.id), t.text),
                Span::styled(what, t.title),
                Span::styled(format!(" ({:?})", op.origin).to_lowercase(), t.dim),
            ]));
            lines.push(Line::from(vec![
                label("phase"),
                Span::styled(op.phase.as_str(), phase_style),
                Span::styled(format!("  started {} ago", age(app.now, op.started)), t.dim),
            ]));
            if let Some(deadline) = op.deadline.filter(|_| op.is_in_flight()) {
                let text = if deadline > app.now {
                    format!("in {}", format_duration(deadline.since(app.now)))
                } else {
                    format!("passed {} ago", format_duration(app.now.since(deadline)))
                };
                lines.push(Line::from(vec![
                    label("deadline"),
                    Span::styled(text, t.warn),
                ]));
            }
            if let Some(outcome) = &op.outcome {
                lines.push(Line::from(vec![
                    label("outcome"),
                    Span::styled(outcome.clone(), phase_style),
                ]));
            }
            let room = (area.height as usize).saturating_sub(lines.len() + 2);
            let skip = op.steps.len().saturating_sub(room);
            for step in &op.steps[skip..] {
                lines.push(Line::from(vec![
                    Span::styled(format!("{} ", step.at), t.dim),
                    Span::styled(step.text.clone(), t.text),
                ]));
            }
        }
    }
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: true }).block(block(
            "Lock & operation",
            app.focus == Focus::Operation,
            t,
        )),
        area,
    );
}

/// `latency  pending→launch p50 4s p95 9s (12) · Ready→verified p50 1s p95 2s (12)`:
/// how fast this engine answered, over its recent scale-ups.
fn latency_line<'a>(
    latency: &crate::engine::latency::LatencySummary,
    label: &dyn Fn(&str) -> Span<'a>,
    t: &Theme,
) -> Option<Line<'a>> {
    let figure = |name: &str, p: &crate::engine::latency::Percentiles| {
        format!(
            "{name} p50 {} p95 {} ({})",
            format_duration(p.p50),
            format_duration(p.p95),
            p.count
        )
    };
    let parts: Vec<String> = [
        latency
            .scale_up
            .as_ref()
            .map(|p| figure("pending→launch", p)),
        latency.verify.as_ref().map(|p| figure("Ready→verified", p)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        return None;
    }
    Some(Line::from(vec![
        label("latency"),
        Span::styled(parts.join(" · "), t.text),
    ]))
}
