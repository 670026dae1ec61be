//! Overlays: the help generated from the keymap, and the confirmation
//! dialog (titled "Confirm", y/n, Cancel highlighted by default).

use super::theme::Theme;
use crate::app::keymap::Keymap;
use crate::app::{App, Confirm};
use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Wrap};

pub(super) fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(row);
    cell
}

/// A rounded, focused panel drawn over whatever is under it.
pub(super) fn render_panel(
    frame: &mut Frame,
    rect: Rect,
    lines: Vec<Line>,
    title: String,
    t: &Theme,
) {
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .border_type(BorderType::Rounded)
                .border_style(t.focused_border)
                .title(Span::styled(title, t.title)),
        ),
        rect,
    );
}

pub fn render_help(frame: &mut Frame, area: Rect, app: &App, t: &Theme) {
    let mut lines = vec![Line::from("")];
    for binding in &app.keymap.bindings {
        lines.push(Line::from(vec![
            Span::styled(format!("  {:>14}  ", Keymap::keys_label(binding)), t.key),
            Span::styled(binding.help, t.text),
        ]));
    }
    lines.push(Line::from(""));
    if app.read_only {
        lines.push(Line::from(Span::styled(
            "  read-only: actions that change the cluster are not available",
            t.warn,
        )));
    }
    lines.push(Line::from(Span::styled(
        "  any key closes this help",
        t.dim,
    )));
    let height = lines.len() as u16 + 2;
    render_panel(frame, centered(area, 84, height), lines, " Help ".into(), t);
}

pub fn render_confirm(frame: &mut Frame, area: Rect, dialog: &Confirm, t: &Theme) {
    let mut lines = vec![
        Line::from(""),
        Line::from(Span::styled(dialog.question.clone(), t.title)),
        Line::from(""),
    ];
    for detail in &dialog.details {
        lines.push(Line::from(Span::styled(format!("• {detail}"), t.text)));
    }
    lines.push(Line::from(""));
    let button = |label: &str, on: bool| {
        let style = if on {
            t.selected.add_modifier(Modifier::BOLD)
        } else {
            t.text
        };
        Span::styled(format!("[ {label} ]"), style)
    };
    lines.push(Line::from(vec![
        Span::raw("        "),
        button("Cancel", !dialog.ok_selected),
        Span::raw("    "),
        button("OK", dialog.ok_selected),
    ]));
    lines.push(Line::from(""));
    lines.push(Line::from(vec![
        Span::styled(" y", t.key),
        Span::styled(" confirm  ", t.dim),
        Span::styled("n/Esc", t.key),
        Span::styled(" cancel  ", t.dim),
        Span::styled("Enter", t.key),
        Span::styled(" the highlighted button", t.dim),
    ]));
    let width = 72;
    let height = (lines.len() as u16
        + 2
        + dialog
            .details
            .iter()
            .map(|d| d.len() as u16 / (width - 4))
            .sum::<u16>())
    .min(area.height);
    let rect = centered(area, width, height);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::bordered()
                .border_type(BorderType::Double)
                .border_style(t.warn)
                .title(Span::styled(" Confirm ", t.title)),
        ),
        rect,
    );
}

/// The reconciliation view (`R`): every finding, its class and its fix.
pub fn render_reconciliation(frame: &mut Frame, area: Rect, app: &App, t: &Theme, selected: usize) {
    let findings = app
        .snapshot
        .as_ref()
        .map(|s| s.findings.as_slice())
        .unwrap_or_default();
    let mut lines = vec![Line::from("")];
    if findings.is_empty() {
        lines.push(Line::from(Span::styled(
            "  EC2, Kubernetes and the operation record agree: nothing to reconcile.",
            t.ok,
        )));
    }
    for (i, f) in findings.iter().enumerate() {
        let style = if i == selected { t.selected } else { t.text };
        lines.push(Line::from(vec![
            Span::styled(format!("  {:<27}", f.class()), t.warn),
            Span::styled(f.describe(), style),
        ]));
        lines.push(Line::from(Span::styled(
            format!("  {:<27}fix: {}", "", f.fix()),
            t.dim,
        )));
        if let crate::engine::reconcile::Finding::NeverJoined {
            console_tail: Some(tail),
            ..
        } = f
        {
            for l in tail
                .lines()
                .rev()
                .take(3)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                lines.push(Line::from(Span::styled(
                    format!("  {:<27}│ {l}", ""),
                    t.dim,
                )));
            }
        }
    }
    lines.push(Line::from(""));
    let hint = if app.read_only {
        "  j/k move · Esc closes (read-only: no fixes)"
    } else {
        "  j/k move · Enter fixes the selected one (asks to confirm) · Esc closes"
    };
    lines.push(Line::from(Span::styled(hint, t.dim)));
    let height = (lines.len() as u16 + 2).min(area.height);
    let title = format!(" Reconciliation · {} finding(s) ", findings.len());
    render_panel(frame, centered(area, 110, height), lines, title, t);
}
