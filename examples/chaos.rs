//! Seeded fault-injection runs of the engine:
//!
//!   cargo run --release --features harness --example chaos -- --seeds N --start-seed S [--engines K] [--threads T] [--trace]
//!
//! Ends with one JSON line: {"seeds", "violations", "faults": {kind: count}, "wall_seconds"}.
//! A failing seed is printed with the one command that replays it exactly.

use clap::Parser;
use k3s_autoscaler::harness::chaos::sabotage::Sabotage;
use k3s_autoscaler::harness::chaos::{SeedOutcome, faults::KINDS, run_control_seed, run_seed_with};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// How many seeds.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    #[arg(long, default_value_t = 1)]
    start_seed: u64,
    /// Engines sharing the world (1–4); drawn from each seed when absent.
    #[arg(long)]
    engines: Option<usize>,
    /// Worker threads (seeds are independent).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Stop starting seeds after this many seconds (0: no limit).
    #[arg(long, default_value_t = 0)]
    max_seconds: u64,
    /// Print every seed's call trace (for replaying one).
    #[arg(long)]
    trace: bool,
    /// Plant a negative control in engine 0 (forged-fence, second-operation,
    /// cordons-two-nodes, double-launch, ignores-min-workers, skips-drain,
    /// hangs-past-lease, ignores-join-timeout, read-only-mutates,
    /// never-releases, terminates-two): its invariant must fire.
    #[arg(long, value_parser = parse_sabotage)]
    sabotage: Option<Sabotage>,
    /// With --sabotage: its control instead (the same world, fault rates
    /// and settings, engine 0 healthy), which must be clean.
    #[arg(long, requires = "sabotage")]
    control: bool,
}

fn parse_sabotage(name: &str) -> Result<Sabotage, String> {
    Sabotage::parse(name).ok_or_else(|| {
        let names: Vec<&str> = Sabotage::ALL.iter().map(|s| s.name()).collect();
        format!("unknown sabotage {name:?}; one of: {}", names.join(", "))
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(args.start_seed));
    let end = args.start_seed.saturating_add(args.seeds);
    let results: Arc<Mutex<Vec<SeedOutcome>>> = Arc::new(Mutex::new(Vec::new()));
    let deadline = (args.max_seconds > 0).then(|| started + Duration::from_secs(args.max_seconds));
    let workers: Vec<_> = (0..args.threads.max(1))
        .map(|_| {
            let (next, results) = (next.clone(), results.clone());
            let (engines, trace, sabotage) = (args.engines, args.trace, args.sabotage);
            let control = args.control;
            std::thread::spawn(move || {
                loop {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return;
                    }
                    let seed = next.fetch_add(1, Ordering::SeqCst);
                    if seed >= end {
                        return;
                    }
                    let mut outcome = match sabotage {
                        Some(kind) if control => run_control_seed(seed, engines, kind),
                        _ => run_seed_with(seed, engines, sabotage),
                    };
                    if trace {
                        for line in &outcome.trace {
                            println!("seed {seed}: {line}");
                        }
                    }
                    outcome.trace.clear();
                    results
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(outcome);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let results = results.lock().unwrap_or_else(|p| p.into_inner());
    let mut faults: BTreeMap<&str, u64> = KINDS.iter().map(|k| (*k, 0)).collect();
    let mut violations = 0;
    let (mut ups, mut downs, mut crashes, mut circuits) = (0u64, 0u64, 0u64, 0u64);
    for r in results.iter() {
        for (k, n) in &r.faults {
            *faults.entry(k).or_default() += n;
        }
        ups += u64::from(r.scale_ups);
        downs += u64::from(r.scale_downs);
        crashes += u64::from(r.crashes);
        circuits += u64::from(r.circuit_opened);
        if !r.violations.is_empty() {
            violations += r.violations.len();
            eprintln!(
                "seed {} ({} engines): {} violation(s)",
                r.seed,
                r.engines,
                r.violations.len()
            );
            for v in &r.violations {
                eprintln!("  {v}");
            }
            eprintln!("  replay: {}", r.replay_command());
        }
    }
    eprintln!(
        "{} seeds: {ups} scale-ups and {downs} scale-downs completed, {crashes} engine crashes and restarts, the circuit breaker opened {circuits} times",
        results.len()
    );
    let line = serde_json::json!({
        "seeds": results.len(),
        "violations": violations,
        "circuit_opened": circuits,
        "faults": faults,
        "wall_seconds": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    });
    println!("{line}");
    if violations > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
