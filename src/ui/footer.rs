//! The status line (the latest notice: refusals in red) and the key hints,
//! generated from the keymap.

use super::theme::Theme;
use crate::app::App;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

pub fn render_status(frame: &mut Frame, area: Rect, app: &App, t: &Theme) {
    let line = match &app.notice {
        Some(n) => Line::from(vec![
            Span::styled(format!(" {} ", n.at), t.dim),
            Span::styled(n.text.clone(), if n.error { t.bad } else { t.ok }),
        ]),
        None if app.overlay.is_filter_input() => Line::from(Span::styled(
            " filter: type to match name/instance/AZ/type · Enter keeps · Esc clears",
            t.dim,
        )),
        None => Line::from(""),
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// The footer's key hints, in keymap order; on a narrow terminal the ones
/// that do not fit are left out, but the last two (help and quit) never are.
pub fn render_keys(frame: &mut Frame, area: Rect, app: &App, t: &Theme) {
    let entries = app.keymap.footer();
    let width = |(keys, what): &(String, &str)| keys.chars().count() + what.chars().count() + 3;
    let kept_last = entries.len().saturating_sub(2);
    let mut room =
        (area.width as usize).saturating_sub(entries[kept_last..].iter().map(width).sum());
    let mut shown = Vec::new();
    for entry in &entries[..kept_last] {
        let w = width(entry);
        if w > room {
            break;
        }
        room -= w;
        shown.push(entry);
    }
    shown.extend(entries[kept_last..].iter());
    let mut spans = Vec::new();
    for (keys, what) in shown {
        spans.push(Span::styled(format!(" {keys}"), t.key));
        spans.push(Span::styled(format!(" {what} "), t.dim));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
