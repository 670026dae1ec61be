//! Two lines on top: who and what (cluster, mode badges, time, data age),
//! then the lock and the last backend error.

use super::age;
use super::theme::Theme;
use crate::app::App;
use crate::engine::Mode;
use crate::ports::format_duration;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

pub fn render(frame: &mut Frame, area: Rect, app: &App, t: &Theme) {
    let mut top = vec![
        Span::styled(" k3s-autoscaler ", t.title),
        Span::styled("│ cluster ", t.dim),
        Span::styled(app.cluster.clone(), t.text),
        Span::raw(" "),
        Span::styled(format!(" {} ", app.mode().badge()), t.badge),
    ];
    if app.demo {
        top.push(Span::raw(" "));
        top.push(Span::styled(" DEMO ", t.badge));
    }
    if app.paused() {
        top.push(Span::raw(" "));
        top.push(Span::styled(" PAUSED ", t.bad));
    }
    let cluster_pause = app
        .snapshot
        .as_ref()
        .and_then(|s| s.record.as_ref())
        .and_then(|r| r.paused_at(app.now));
    if let Some(p) = cluster_pause {
        top.push(Span::raw(" "));
        // The circuit breaker's pause is not a person's: say what it is,
        // and that only a person ends it early.
        let text = if p.circuit {
            format!(" CIRCUIT OPEN until {} (P resumes): {} ", p.until, p.reason)
        } else {
            format!(
                " CLUSTER PAUSED by {} until {}: {} ",
                p.by, p.until, p.reason
            )
        };
        top.push(Span::styled(text, t.bad));
    }
    if app.frozen {
        top.push(Span::raw(" "));
        top.push(Span::styled(" FROZEN ", t.warn));
    }
    // The view cannot be true: say so where nobody can miss it.
    if let Some(why) = app
        .snapshot
        .as_ref()
        .and_then(|s| s.decision.sanity_stop.as_ref())
    {
        top.push(Span::raw(" "));
        top.push(Span::styled(
            format!(" SANITY STOP: {why}; nothing destructive runs "),
            t.bad,
        ));
    }
    top.push(Span::styled(
        format!(
            " │ {} UTC",
            app.now
                .to_rfc3339()
                .get(..19)
                .unwrap_or("")
                .replace('T', " ")
        ),
        t.dim,
    ));
    match &app.snapshot {
        Some(s) => top.push(Span::styled(
            format!(" │ data {} old", age(app.now, s.at)),
            t.dim,
        )),
        None => top.push(Span::styled(
            " │ waiting for the first observation…",
            t.warn,
        )),
    }

    let mut bottom = vec![Span::styled(" lock ", t.dim)];
    let lock = app.snapshot.as_ref().and_then(|s| s.lock.as_ref());
    match lock {
        Some(l) if l.is_held_at(app.now) => {
            let mine = app
                .snapshot
                .as_ref()
                .and_then(|s| s.owner.as_ref())
                .is_some_and(|o| o == &l.owner);
            bottom.push(Span::styled(
                format!(
                    "held by {}{}",
                    l.owner,
                    if mine { " (this console)" } else { "" }
                ),
                t.warn,
            ));
            bottom.push(Span::styled(
                format!(
                    " · fence {} · lease {} left",
                    l.fence,
                    format_duration(l.until.since(app.now))
                ),
                t.text,
            ));
        }
        Some(l) => bottom.push(Span::styled(format!("free · fence {}", l.fence), t.ok)),
        None if app.mode() == Mode::ReadOnly => {
            bottom.push(Span::styled("never taken (read-only)", t.ok))
        }
        None => bottom.push(Span::styled("free · never taken", t.ok)),
    }
    if let Some(s) = app.snapshot.as_ref().filter(|s| !s.findings.is_empty()) {
        bottom.push(Span::styled(
            format!(" │ {} to reconcile (R)", s.findings.len()),
            t.warn,
        ));
    }
    // An operation that cannot start or advance outranks a backend that
    // could not be read: it is what the engine is stuck on.
    if let Some(s) = &app.snapshot
        && let Some((backend, error)) = s
            .errors
            .get_key_value("operation")
            .or_else(|| s.errors.iter().next())
    {
        bottom.push(Span::styled(" │ last error ", t.dim));
        bottom.push(Span::styled(format!("{backend}: {error}"), t.bad));
    }
    frame.render_widget(
        Paragraph::new(vec![Line::from(top), Line::from(bottom)]).style(t.text),
        area,
    );
}
