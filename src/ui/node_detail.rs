//! The node detail view: `app::node_detail` drawn over the panels.

use super::overlays::{centered, render_panel};
use super::theme::Theme;
use crate::app::App;
use crate::app::node_detail::{PodFate, node_detail};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

pub fn render(frame: &mut Frame, area: Rect, app: &App, t: &Theme, name: &str, instance_id: &str) {
    let Some(d) = node_detail(app, name, instance_id) else {
        let lines = vec![
            Line::from(""),
            Line::from(Span::styled(
                format!("  {name} is no longer in the workers table"),
                t.warn,
            )),
            Line::from(Span::styled("  Esc closes", t.dim)),
        ];
        render_panel(frame, centered(area, 70, 5), lines, format!(" {name} "), t);
        return;
    };
    let section = |title: &str| Line::from(Span::styled(format!("  {title}"), t.title));
    let mut lines = vec![
        Line::from(""),
        Line::from(Span::styled(format!("  {}", d.facts), t.text)),
        Line::from(""),
        section("scale-down"),
        Line::from(Span::styled(
            format!(
                "    {}",
                d.standing
                    .as_deref()
                    .unwrap_or("unknown: the view was not read")
            ),
            t.text,
        )),
        Line::from(""),
        section("boot"),
    ];
    if d.boot.is_empty() {
        lines.push(Line::from(Span::styled(
            "    not timed: launched before this console looked, or not by this tool",
            t.dim,
        )));
    }
    for b in &d.boot {
        lines.push(Line::from(Span::styled(format!("    {b}"), t.text)));
    }
    if !d.console_tail.is_empty() {
        lines.push(Line::from(""));
        lines.push(section("console output (never joined), last lines"));
        for l in &d.console_tail {
            lines.push(Line::from(Span::styled(format!("    {l}"), t.dim)));
        }
    }
    lines.push(Line::from(""));
    lines.push(section(&format!(
        "pods ({}), and what a drain does",
        d.pods.len()
    )));
    // What is left of the screen after the lines above and the border.
    let room = (area.height as usize).saturating_sub(lines.len() + 4);
    let shown = if d.pods.len() > room {
        room.saturating_sub(1)
    } else {
        d.pods.len()
    };
    for (pod, fate) in d.pods.iter().take(shown) {
        let (what, style) = match fate {
            PodFate::Evicted => ("evicted".to_string(), t.ok),
            PodFate::Ignored(why) => (format!("left alone ({why})"), t.dim),
            PodFate::Blocks(why) => (format!("blocks: {why}"), t.bad),
        };
        lines.push(Line::from(vec![
            Span::styled(format!("    {pod:<40} "), t.text),
            Span::styled(what, style),
        ]));
    }
    if shown < d.pods.len() {
        lines.push(Line::from(Span::styled(
            format!("    … and {} more", d.pods.len() - shown),
            t.dim,
        )));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled("  Esc closes", t.dim)));
    let height = lines.len() as u16 + 2;
    let width = area.width.saturating_sub(8).clamp(60, 120);
    render_panel(
        frame,
        centered(area, width, height),
        lines,
        format!(" {} ", d.title),
        t,
    );
}
