//! One engine decision on observations of 10 to 5 000 workers (targets:
//! ≤ 50 µs at 1 000 workers, a `hold` ≤ 1 ms at 5 000; README).

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use k3s_autoscaler::engine::{PolicyMemory, Settings, decide};
use k3s_autoscaler::ports::{OpRecord, Reading};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let settings = Settings::default();
    let record = OpRecord::default();
    let mut group = c.benchmark_group("engine decision");
    for workers in [10usize, 100, 1_000, 5_000] {
        let hold = common::observation(workers);
        group.bench_function(format!("{workers} workers, hold"), |b| {
            b.iter(|| {
                decide(
                    &settings,
                    &mut PolicyMemory::default(),
                    black_box(&hold),
                    &record,
                    common::NOW,
                )
            })
        });
        // Idle long enough to look for a scale-down candidate: the costly path.
        let idle = k3s_autoscaler::engine::Observation {
            cpu_partial: None,
            cpu: Reading::Known {
                value: 10.0,
                at: common::NOW,
            },
            ..common::observation(workers)
        };
        let mut idle_view = idle.clone();
        if let Ok(view) = idle_view.cluster.as_mut() {
            view.pods.retain(|p| p.node_name.is_some());
        }
        let memory = PolicyMemory {
            cpu_high_since: None,
            idle_since: Some(k3s_autoscaler::ports::Timestamp(common::NOW.0 - 3_600_000)),
            last_nodes: None,
            ..PolicyMemory::default()
        };
        group.bench_function(format!("{workers} workers, scale-down search"), |b| {
            b.iter(|| {
                decide(
                    &settings,
                    &mut memory.clone(),
                    black_box(&idle_view),
                    &record,
                    common::NOW,
                )
            })
        });
    }
    // The forecast's worst tick: two days of a two-hourly sale seen, and
    // the period chosen afresh (the choice is kept within a minute).
    let mut settings = Settings::default();
    settings.policy.predictive = true;
    let mut seen = PolicyMemory::default();
    for m in 0..(2 * 24 * 60) {
        let at = k3s_autoscaler::ports::Timestamp(common::NOW.0 - (2 * 24 * 60 - m) * 60_000);
        seen.demand
            .record(at, if m % 120 < 20 { 4_900 } else { 4_700 });
    }
    let hold = common::observation(5_000);
    group.bench_function("5000 workers, hold, predictive on", |b| {
        b.iter(|| {
            decide(
                &settings,
                &mut seen.clone(),
                black_box(&hold),
                &record,
                common::NOW,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
