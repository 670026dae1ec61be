//! The workers table's rows as shown: filtered and sorted. A pure function
//! of the state, used by both `update` (moving the selection) and the view.

use super::App;
use super::snapshot::WorkerRow;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SortColumn {
    Name,
    Zone,
    Cpu,
    Pods,
    Age,
}

impl SortColumn {
    pub fn next(self) -> Self {
        match self {
            SortColumn::Name => SortColumn::Zone,
            SortColumn::Zone => SortColumn::Cpu,
            SortColumn::Cpu => SortColumn::Pods,
            SortColumn::Pods => SortColumn::Age,
            SortColumn::Age => SortColumn::Name,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            SortColumn::Name => "NAME",
            SortColumn::Zone => "AZ",
            SortColumn::Cpu => "CPU",
            SortColumn::Pods => "PODS",
            SortColumn::Age => "AGE",
        }
    }
}

pub fn matches(row: &WorkerRow, filter: &str) -> bool {
    if filter.is_empty() {
        return true;
    }
    let needle = filter.to_ascii_lowercase();
    [&row.name, &row.instance_id, &row.zone, &row.instance_type]
        .iter()
        .any(|field| field.to_ascii_lowercase().contains(&needle))
}

pub fn visible(app: &App) -> Vec<&WorkerRow> {
    let Some(snapshot) = &app.snapshot else {
        return Vec::new();
    };
    let mut rows: Vec<&WorkerRow> = snapshot
        .workers
        .iter()
        .filter(|r| matches(r, &app.filter))
        .collect();
    rows.sort_by(|a, b| {
        let order = match app.sort {
            SortColumn::Name => a.name.cmp(&b.name),
            SortColumn::Zone => a.zone.cmp(&b.zone).then(a.name.cmp(&b.name)),
            SortColumn::Cpu => a
                .cpu_percent
                .unwrap_or(-1.0)
                .total_cmp(&b.cpu_percent.unwrap_or(-1.0))
                .then(a.name.cmp(&b.name)),
            SortColumn::Pods => a.pods.cmp(&b.pods).then(a.name.cmp(&b.name)),
            // Age ascending = youngest first.
            SortColumn::Age => b.created.cmp(&a.created).then(a.name.cmp(&b.name)),
        };
        if app.sort_reverse {
            order.reverse()
        } else {
            order
        }
    });
    rows
}
