//! One full console frame on a 200×60 TestBackend, with 10 … 5 000 workers
//! and 24 h of 15-second samples in each chart (targets: ≤ 2 ms at 1 000
//! workers, ≤ 8 ms at 5 000).

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use k3s_autoscaler::app::keymap::Keymap;
use k3s_autoscaler::app::{App, ChartWindow, Snapshot};
use k3s_autoscaler::engine::{Mode, PolicyMemory, Settings, TickReport, decide};
use k3s_autoscaler::ports::{OpRecord, StateSnapshot, Timestamp};
use k3s_autoscaler::ui::{ViewOptions, view};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::collections::BTreeMap;

fn app(workers: usize, window: ChartWindow) -> App {
    let settings = Settings::default();
    let observation = common::observation(workers);
    let record = OpRecord::default();
    let decision = decide(
        &settings,
        &mut PolicyMemory::default(),
        &observation,
        &record,
        common::NOW,
    );
    let cpu: BTreeMap<String, f64> = observation
        .cluster
        .as_ref()
        .map(|v| v.nodes.iter().map(|n| (n.name.clone(), 50.0)).collect())
        .unwrap_or_default();
    let report = TickReport {
        at: common::NOW,
        observation,
        decision,
        state: Ok(StateSnapshot { lock: None, record }),
        exec: None,
        findings: vec![],
        boot: vec![],
        boot_stats: vec![],
        cluster_source: None,
        latency: Default::default(),
    };
    let snapshot = Snapshot::build(report, Ok(cpu), Mode::Supervised, false, None);
    let keymap = Keymap::new(false, &BTreeMap::new()).unwrap();
    let mut app = App::new("bench".into(), true, false, keymap, settings, common::NOW);
    app.selected = snapshot.workers.get(workers / 2).map(|r| r.name.clone());
    app.snapshot = Some(snapshot);
    app.window = window;
    // 24 h of 15-second samples in each chart.
    for i in 0..5_760i64 {
        let at = Timestamp(common::NOW.0 - (5_760 - i) * 15_000);
        app.cpu.push(at, 50.0 + 30.0 * ((i as f64) / 200.0).sin());
        app.pending.push(at, ((i % 97) as f64 / 10.0).floor());
    }
    app
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("console frame 200x60");
    for workers in [10usize, 100, 1_000, 5_000] {
        for window in [ChartWindow::Min15, ChartWindow::Hour6] {
            let app = app(workers, window);
            let mut terminal = Terminal::new(TestBackend::new(200, 60)).unwrap();
            let options = ViewOptions {
                log_timestamps: false,
            };
            group.bench_function(
                format!("{workers} workers, {} window", window.label()),
                |b| {
                    b.iter(|| {
                        terminal
                            .draw(|f| view(f, &app, options))
                            .map(|_| ())
                            .unwrap()
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
