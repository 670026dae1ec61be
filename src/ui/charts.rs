//! CPU and unschedulable-pod charts over the selected window, with the
//! scaling thresholds drawn as lines.

use super::block;
use super::theme::Theme;
use crate::app::{App, Focus};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::Span;
use ratatui::widgets::{Axis, Chart, Dataset, GraphType};

pub fn render(frame: &mut Frame, area: Rect, app: &App, t: &Theme) {
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(area);
    let window = app.window.duration();
    let since = app.now.minus(window);
    let x_bounds = [-(window.as_secs_f64()), 0.0];
    let x_labels = vec![
        Span::styled(format!("-{}", app.window.label()), t.dim),
        Span::styled("now", t.dim),
    ];
    let focused = app.focus == Focus::Charts;

    let cpu = app.cpu.window(since, app.now);
    let p = &app.settings.policy;
    let up = [(x_bounds[0], p.cpu_up_percent), (0.0, p.cpu_up_percent)];
    let down = [(x_bounds[0], p.cpu_down_percent), (0.0, p.cpu_down_percent)];
    let datasets = vec![
        Dataset::default()
            .name(format!("up {:.0}%", p.cpu_up_percent))
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(t.threshold_up))
            .data(&up),
        Dataset::default()
            .name(format!("down {:.0}%", p.cpu_down_percent))
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(t.threshold_down))
            .data(&down),
        Dataset::default()
            .name("CPU")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(t.cpu))
            .data(&cpu),
    ];
    let latest = cpu
        .last()
        .map_or("Unknown".to_string(), |(_, v)| format!("{v:.0}%"));
    let chart = Chart::new(datasets)
        .block(block(
            &format!("Worker CPU {latest} ({})", app.window.label()),
            focused,
            t,
        ))
        .x_axis(
            Axis::default()
                .bounds(x_bounds)
                .labels(x_labels.clone())
                .style(t.dim),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, 100.0])
                .labels(vec![
                    Span::styled("0", t.dim),
                    Span::styled("50", t.dim),
                    Span::styled("100", t.dim),
                ])
                .style(t.dim),
        );
    frame.render_widget(chart, left);

    let pending = app.pending.window(since, app.now);
    let top = app.pending.max_since(since).unwrap_or(0.0).max(4.0).ceil();
    let now_pending = pending
        .last()
        .map_or("?".to_string(), |(_, v)| format!("{v:.0}"));
    let chart = Chart::new(vec![
        Dataset::default()
            .name("unschedulable")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(t.pending))
            .data(&pending),
    ])
    .block(block(
        &format!("Unschedulable pods {now_pending} ({})", app.window.label()),
        focused,
        t,
    ))
    .x_axis(
        Axis::default()
            .bounds(x_bounds)
            .labels(x_labels)
            .style(t.dim),
    )
    .y_axis(
        Axis::default()
            .bounds([0.0, top])
            .labels(vec![
                Span::styled("0", t.dim),
                Span::styled(format!("{top:.0}"), t.dim),
            ])
            .style(t.dim),
    );
    frame.render_widget(chart, right);
}
