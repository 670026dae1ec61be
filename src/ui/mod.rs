//! The console's view: `view(frame, &app)` draws the state and changes
//! nothing (docs/architecture.md §1). Each panel is its own file.

mod charts;
mod footer;
mod header;
mod logs;
mod node_detail;
mod operation;
mod overlays;
mod suggestion;
pub mod theme;
mod workers;

use crate::app::{App, Overlay};
use crate::ports::{Timestamp, format_duration};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::text::Span;
use ratatui::widgets::{Block, BorderType, Paragraph, Wrap};
use theme::Theme;

pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

/// Options of the view that are not state: whether log lines carry (wall
/// clock) timestamps, which only match simulated time at speed 1.
#[derive(Copy, Clone, Debug)]
pub struct ViewOptions {
    pub log_timestamps: bool,
}

pub fn view(frame: &mut Frame, app: &App, options: ViewOptions) {
    let area = frame.area();
    let t = Theme::get(app.light_theme);
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "Terminal too small: {}×{}. k3s-autoscaler needs at least {MIN_WIDTH}×{MIN_HEIGHT}. Enlarge it, or press q to quit.",
            area.width, area.height
        );
        frame.render_widget(
            Paragraph::new(text).wrap(Wrap { trim: true }).style(t.warn),
            area,
        );
        return;
    }
    // Small terminals give up chart and log height first; the workers
    // table keeps whatever is left.
    let tall = area.height >= 36;
    let chart_height = if tall { 9 } else { 6 };
    let panel_height = if tall { 10 } else { 6 };
    let log_height = if tall { 6 } else { 3 };
    let [
        header_area,
        chart_area,
        workers_area,
        panels,
        log_area,
        status_area,
        keys_area,
    ] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(chart_height),
        Constraint::Min(3),
        Constraint::Length(panel_height),
        Constraint::Length(log_height),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let [op_area, suggestion_area] =
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(panels);

    header::render(frame, header_area, app, &t);
    charts::render(frame, chart_area, app, &t);
    workers::render(frame, workers_area, app, &t);
    operation::render(frame, op_area, app, &t);
    suggestion::render(frame, suggestion_area, app, &t);
    logs::render(frame, log_area, app, &t, options.log_timestamps);
    footer::render_status(frame, status_area, app, &t);
    footer::render_keys(frame, keys_area, app, &t);
    match &app.overlay {
        Overlay::Reconcile { selected } => {
            overlays::render_reconciliation(frame, area, app, &t, *selected)
        }
        Overlay::Help => overlays::render_help(frame, area, app, &t),
        Overlay::Confirm(dialog) => overlays::render_confirm(frame, area, dialog, &t),
        Overlay::Node { name, instance_id } => {
            node_detail::render(frame, area, app, &t, name, instance_id)
        }
        Overlay::FilterInput | Overlay::None => {}
    }
}

fn block<'a>(title: &str, focused: bool, t: &Theme) -> Block<'a> {
    Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(if focused { t.focused_border } else { t.border })
        .title(Span::styled(
            format!(" {title} "),
            if focused { t.title } else { t.text },
        ))
}

/// Age for tables: `45s`, `12m`, `3h10m`, never negative.
fn age(now: Timestamp, then: Timestamp) -> String {
    let d = now.since(then);
    let secs = d.as_secs();
    if secs >= 86_400 {
        return format!("{}d{}h", secs / 86_400, (secs % 86_400) / 3600);
    }
    if secs >= 3600 {
        return format_duration(std::time::Duration::from_secs(secs / 60 * 60));
    }
    format_duration(std::time::Duration::from_secs(secs))
}
