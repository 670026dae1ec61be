//! The workers table: sorted, filtered, the selected row highlighted and
//! the node an operation touches marked.

use super::theme::Theme;
use super::{age, block};
use crate::app::workers::{SortColumn, visible};
use crate::app::{App, Focus, Marker};
use crate::engine::StandingKind;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row, Table, TableState};

pub fn render(frame: &mut Frame, area: Rect, app: &App, t: &Theme) {
    let rows = visible(app);
    let total = app.snapshot.as_ref().map_or(0, |s| s.workers.len());
    let arrow = if app.sort_reverse { "↓" } else { "↑" };
    let mut title = format!(
        "Workers {}/{total} · sort {}{arrow}",
        rows.len(),
        app.sort.title()
    );
    // The watch caches' age: how current the rows are (the operator's
    // first question when a pod the table does not show is pending).
    if let Some(source) = app
        .snapshot
        .as_ref()
        .and_then(|s| s.cluster_source.as_deref())
    {
        title.push_str(&format!(" · {source}"));
    }
    if app.overlay.is_filter_input() || !app.filter.is_empty() {
        title.push_str(&format!(
            " · filter /{}{}",
            app.filter,
            if app.overlay.is_filter_input() {
                "▏"
            } else {
                ""
            }
        ));
    }
    let unknown = app
        .snapshot
        .as_ref()
        .and_then(|s| s.observation.cluster.as_ref().err().cloned());

    // A node named after its instance (how our user data registers it)
    // would say the same thing twice: the NAME column goes, and the room
    // is the SCALE-DOWN column's.
    // Judged on every row, not the filtered ones: the column must not come
    // and go while a filter is typed.
    let names = app.snapshot.as_ref().is_some_and(|s| {
        s.workers
            .iter()
            .any(|r| r.ready.is_some() && r.name != r.instance_id)
    });
    let titles: Vec<&str> = [
        "",
        "NAME",
        "INSTANCE",
        "AZ",
        "TYPE",
        "READY",
        "CORDON",
        "CPU",
        "PODS",
        "AGE",
        "SCALE-DOWN",
    ]
    .into_iter()
    .filter(|h| names || *h != "NAME")
    .collect();
    let header = Row::new(titles.iter().map(|h| {
        let sorted = SortColumn::title(app.sort) == *h;
        Cell::from(Span::styled(*h, if sorted { t.title } else { t.dim }))
    }));
    // Only the rows that fit are built: with thousands of workers, a frame
    // formats a screenful, not the fleet. The window follows the selection.
    let selected = app
        .selected
        .as_ref()
        .and_then(|s| rows.iter().position(|r| &r.name == s));
    let fits = usize::from(area.height.saturating_sub(3)).max(1);
    let first = selected.map_or(0, |i| (i + 1).saturating_sub(fits));
    let shown = &rows[first.min(rows.len())..(first + fits).min(rows.len())];
    let body: Vec<Row> = shown
        .iter()
        .map(|r| {
            let (mark, mark_style) = match r.marker {
                Marker::Draining => ("▼", t.warn),
                Marker::Launching => ("▲", t.ok),
                Marker::None => (" ", t.text),
            };
            let ready = match r.ready {
                Some(true) => Span::styled("Ready", t.ok),
                Some(false) => Span::styled("NotReady", t.bad),
                None => Span::styled("joining", t.warn),
            };
            let mut cells = vec![Cell::from(Span::styled(mark, mark_style))];
            if names {
                cells.push(Cell::from(r.name.clone()));
            }
            let standing = match &r.scale_down {
                None => Span::styled("-", t.dim),
                Some(s) => match s.kind {
                    StandingKind::NextToGo => Span::styled(s.text.clone(), t.warn),
                    StandingKind::Blocked => Span::styled(s.text.clone(), t.dim),
                    StandingKind::Eligible | StandingKind::NoNode => Span::raw(s.text.clone()),
                },
            };
            cells.extend([
                Cell::from(r.instance_id.clone()),
                Cell::from(r.zone.clone()),
                Cell::from(r.instance_type.clone()),
                Cell::from(ready),
                Cell::from(if r.cordoned {
                    Span::styled("yes", t.warn)
                } else {
                    Span::raw("-")
                }),
                Cell::from(r.cpu_percent.map_or("-".into(), |c| format!("{c:.0}%"))),
                Cell::from(r.pods.to_string()),
                Cell::from(age(app.now, r.created)),
                Cell::from(standing),
            ]);
            Row::new(cells).style(t.text)
        })
        .collect();
    let mut widths = vec![Constraint::Length(1)];
    if names {
        widths.push(Constraint::Min(19));
    }
    widths.extend([
        Constraint::Length(19),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Length(4),
        Constraint::Length(4),
        Constraint::Length(6),
        Constraint::Min(10),
    ]);
    let mut b = block(&title, app.focus == Focus::Workers, t);
    if let Some(reason) = unknown {
        b = b.title_bottom(Line::from(Span::styled(
            format!(" Kubernetes Unknown: {reason} "),
            t.bad,
        )));
    }
    let table = Table::new(body, widths)
        .header(header)
        .block(b)
        .row_highlight_style(t.selected)
        .column_spacing(1);
    // TableState is rebuilt each frame from the app's selection: the view
    // owns no state of its own.
    let mut state = TableState::default().with_selected(selected.map(|i| i - first));
    frame.render_stateful_widget(table, area, &mut state);
}
