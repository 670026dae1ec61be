//! The log pane: tracing events from the engine, runtime and adapters, via
//! tui-logger.

use super::block;
use super::theme::Theme;
use crate::app::{App, Focus};
use ratatui::Frame;
use ratatui::layout::Rect;
use tui_logger::{TuiLoggerLevelOutput, TuiLoggerWidget};

pub fn render(frame: &mut Frame, area: Rect, app: &App, t: &Theme, timestamps: bool) {
    let widget = TuiLoggerWidget::default()
        .block(block("Log", app.focus == Focus::Log, t))
        .style(t.text)
        .style_error(t.bad)
        .style_warn(t.warn)
        .style_info(t.text)
        .style_debug(t.dim)
        .output_separator(' ')
        .output_timestamp(timestamps.then(|| "%H:%M:%S".to_string()))
        .output_level(Some(TuiLoggerLevelOutput::Abbreviated))
        .output_target(true)
        .output_file(false)
        .output_line(false)
        .state(&app.log_state);
    frame.render_widget(widget, area);
}
