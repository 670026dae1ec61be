//! The engine's current decision and every reason for it.

use super::theme::Theme;
use super::{age, block};
use crate::app::{App, Focus};
use crate::engine::{Action, Mode};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

pub fn render(frame: &mut Frame, area: Rect, app: &App, t: &Theme) {
    let mut lines = Vec::new();
    let title = match &app.snapshot {
        Some(s) => format!("Suggestion · {} ago", age(app.now, s.decision.at)),
        None => "Suggestion".to_string(),
    };
    match &app.snapshot {
        None => lines.push(Line::from(Span::styled(
            "waiting for the first tick…",
            t.dim,
        ))),
        Some(s) => {
            let d = &s.decision;
            let style = if d.action.is_hold() { t.text } else { t.title };
            let mut head = vec![Span::styled(d.action.label(), style)];
            if !d.action.is_hold() {
                let hint = match (app.mode(), &d.action) {
                    (Mode::ReadOnly, _) => "  (read-only: not acted on)".to_string(),
                    (Mode::Auto, _) => "  (auto: the engine acts)".to_string(),
                    (_, Action::Hold) => String::new(),
                    _ => format!("  press {} to apply", enter_label(app)),
                };
                head.push(Span::styled(hint, t.dim));
            }
            lines.push(Line::from(head));
            for reason in &d.reasons {
                let style = if reason.concern { t.warn } else { t.text };
                lines.push(Line::from(vec![
                    Span::styled("• ", t.dim),
                    Span::styled(reason.text.clone(), style),
                ]));
            }
        }
    }
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: true }).block(block(
            &title,
            app.focus == Focus::Suggestion,
            t,
        )),
        area,
    );
}

fn enter_label(app: &App) -> String {
    app.keymap
        .bindings
        .iter()
        .find(|b| b.action == crate::app::keymap::Action::ApplySuggestion)
        .map(crate::app::keymap::Keymap::keys_label)
        .unwrap_or_else(|| "Enter".into())
}
