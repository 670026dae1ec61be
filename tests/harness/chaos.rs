//! Seeded fault injection in CI: a batch of at least 500 seeds,
//! every kind of fault injected, zero invariant violations; the same seed
//! replays the same run; and the checker does catch a broken engine: one
//! planted breakage per invariant, each reported as exactly that invariant.

use k3s_autoscaler::harness::chaos::faults::KINDS;
use k3s_autoscaler::harness::chaos::sabotage::Sabotage;
use k3s_autoscaler::harness::chaos::{run_control_seed, run_seed, run_seed_with};
use k3s_autoscaler::ports::LaunchRequest;
use std::collections::BTreeMap;
use std::sync::Mutex;

const SEEDS: u64 = 600;

#[test]
fn six_hundred_seeds_every_fault_kind_zero_violations() {
    let next = std::sync::atomic::AtomicU64::new(1);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if seed > SEEDS {
                        // This worker's share is done (not a skipped check).
                        return;
                    }
                    let mut outcome = run_seed(seed, None);
                    outcome.trace.clear();
                    results.lock().unwrap().push(outcome);
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    assert_eq!(results.len() as u64, SEEDS);
    let mut faults: BTreeMap<&str, u64> = BTreeMap::new();
    let mut failures = Vec::new();
    let (mut ups, mut downs) = (0, 0);
    for r in &results {
        for (k, n) in &r.faults {
            *faults.entry(k).or_default() += n;
        }
        ups += r.scale_ups;
        downs += r.scale_downs;
        if !r.violations.is_empty() {
            failures.push(format!(
                "seed {}: {:?}\n  replay: {}",
                r.seed,
                r.violations,
                r.replay_command()
            ));
        }
    }
    println!(
        "{}",
        serde_json::json!({"seeds": results.len(), "violations": failures.len(), "faults": faults, "scale_ups": ups, "scale_downs": downs})
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for kind in KINDS {
        assert!(
            faults.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} fault was injected: {faults:?}"
        );
    }
    assert!(
        ups > SEEDS as u32 && downs > SEEDS as u32 / 2,
        "the runs must actually scale: {ups} up, {downs} down"
    );
}

#[test]
fn the_same_seed_replays_the_same_run() {
    for seed in [3, 17] {
        let a = run_seed(seed, Some(3));
        let b = run_seed(seed, Some(3));
        assert!(!a.trace.is_empty());
        assert_eq!(a.trace, b.trace, "seed {seed} diverged");
        assert_eq!(a.faults, b.faults);
        assert_eq!(
            (a.scale_ups, a.scale_downs, a.crashes),
            (b.scale_ups, b.scale_downs, b.crashes)
        );
    }
    assert_ne!(run_seed(3, Some(3)).trace, run_seed(4, Some(3)).trace);
}

/// Negative control: an "engine" that launches without ever taking the lock
/// is caught (invariant 6), and so is one that launches past max_workers
/// (invariant 3). A checker that cannot fail proves nothing.
#[tokio::test]
async fn the_checker_catches_a_rogue_engine() {
    let config = k3s_autoscaler::config::Config::default();
    let options = k3s_autoscaler::harness::demo::DemoOptions {
        scenario: k3s_autoscaler::sim::ScenarioKind::Steady,
        seed: 1,
        speed: k3s_autoscaler::harness::demo::Speed::Max,
        workers: None,
        start: None,
    };
    let demo = k3s_autoscaler::harness::demo::Demo::new(&config, &options, false);
    demo.ports
        .cloud
        .launch(&LaunchRequest {
            op_id: "rogue".into(),
            client_token: "t".into(),
            count: 6,
            instance_type: "t3.large".into(),
            subnet: None,
            master_address: "10.0.0.5".into(),
            k3s_version: "v1.33.1+k3s1".into(),
        })
        .await
        .unwrap();
    let world = k3s_autoscaler::sim::ports::lock(&demo.world);
    let broken: Vec<u8> = world
        .invariants
        .violations
        .iter()
        .map(|v| v.invariant)
        .collect();
    assert!(broken.contains(&6), "{:?}", world.invariants.violations);
    assert!(broken.contains(&3), "{:?}", world.invariants.violations);
}

/// Negative controls in the real chaos runner: for every
/// invariant, an engine broken in exactly that way (harness/chaos/sabotage.rs)
/// beside a healthy one, under the full fault plan. The run must report the
/// breakage, as that invariant only and with the breakage's own words; and
/// the same seed with the same world, fault rates and settings but engine 0
/// healthy must be clean, so that what fired is the breakage and not the
/// conditions set up for it. A checker that cannot fire, or one that fires
/// on the wrong rule or for the wrong cause, fails here.
#[test]
fn each_planted_breakage_trips_exactly_its_invariant() {
    const TRIES: u64 = 24;
    let mut failures = Vec::new();
    for sabotage in Sabotage::ALL {
        let want = sabotage.invariant();
        let tripped = (1..=TRIES)
            .map(|seed| run_seed_with(seed, Some(2), Some(sabotage)))
            .find(|o| !o.violations.is_empty());
        let Some(o) = tripped else {
            failures.push(format!(
                "{}: no violation in {TRIES} seeds (invariant {want} cannot fire?)",
                sabotage.name()
            ));
            continue;
        };
        println!(
            "{} seed {}: {} x{}",
            sabotage.name(),
            o.seed,
            o.violations[0],
            o.violations.len()
        );
        let other: Vec<String> = o
            .violations
            .iter()
            .filter(|v| v.invariant != want)
            .map(|v| v.to_string())
            .collect();
        if !other.is_empty() {
            failures.push(format!(
                "{} (seed {}): wanted only invariant {want}, also got {other:?}\n  replay: {}",
                sabotage.name(),
                o.seed,
                o.replay_command()
            ));
        }
        if !o
            .violations
            .iter()
            .any(|v| v.text.contains(sabotage.expected_text()))
        {
            failures.push(format!(
                "{} (seed {}): no violation says {:?}: {:?}",
                sabotage.name(),
                o.seed,
                sabotage.expected_text(),
                o.violations
            ));
        }
        let control = run_control_seed(o.seed, Some(2), sabotage);
        if !control.violations.is_empty() {
            failures.push(format!(
                "{} (seed {}): the control run with engine 0 healthy is not clean: {:?}\n  replay: {}",
                sabotage.name(),
                o.seed,
                control.violations,
                control.replay_command()
            ));
        }
        // A control in which nothing happens is clean for nothing.
        if let Err(why) = sabotage.control_was_busy(&control) {
            failures.push(format!("{} (seed {}): {why}", sabotage.name(), o.seed));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Seeds a release run found violating, each a mechanism since fixed:
/// 860 (a terminate decided on another cluster's node list went ahead
/// because the sanity check read after the spell ended), 4794 (an
/// operation's own never-joined launches made the unready share a stop
/// for their own terminate) and 12123 (the clean-up they were left to
/// waited behind a whole scale-up); and from the next release run (fixed
/// since): 20818, 26025, 30718 and 39438 (a cordon's 404 under another
/// cluster's answers read as "node gone", leaving the node cordoned),
/// 24093 (one injected empty list gave up a terminate whose due time
/// other faults had used up), and two of the checker's: 16675 (a hold on
/// a list a fault emptied, not counted as the fault's time) and 1885 (an
/// outage noted only after the world's deadline check had run); and 5925
/// from the short run after (a clean-up aborted by a crash after its
/// terminate made the next stray wait behind a whole scale-up); and 94811
/// from the 100 000-seed run on afa4b29 (a clean-up aborted before it
/// acted, its lease lost, put a scale-up and its whole join timeout ahead
/// of the same stray). Any engine change moves
/// a seed's faults, so these guard the mechanism only while the trace stays
/// put; the 600 seeds above and the release runs are the real coverage.
#[test]
fn seeds_a_release_run_broke_stay_clean() {
    for (seed, engines) in [
        (860, 4),
        (4794, 1),
        (12123, 3),
        (20818, 1),
        (26025, 3),
        (30718, 4),
        (39438, 4),
        (24093, 1),
        (16675, 1),
        (1885, 1),
        (5925, 4),
        (94811, 2),
    ] {
        let o = run_seed(seed, Some(engines));
        assert!(
            o.violations.is_empty(),
            "seed {seed} ({engines} engines): {:?}",
            o.violations
        );
    }
}

/// The same seeds under the plain settings are clean and scale.
#[test]
fn the_control_seeds_are_clean_without_the_breakage() {
    for seed in 1..=2 {
        let o = run_seed(seed, Some(2));
        assert!(o.violations.is_empty(), "seed {seed}: {:?}", o.violations);
        assert!(o.scale_ups > 0, "seed {seed} never scaled up");
    }
}
