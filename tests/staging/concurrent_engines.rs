//! Eight headless engines on one staging stack, the lock and the operation
//! record in DynamoDB Local (reached through `AWS_ENDPOINT_URL_DYNAMODB`,
//! with no `[aws] endpoint_url` in the config), EC2 on moto behind the strict
//! EC2 proxy, through the flash-sale scenario's spikes (a scale-up after a
//! scale-down, so more than one). The race that the lock protocol exists for,
//! on AWS's own emulator: every operation launches once, and exactly the
//! instances its one `launched` line names; the fleet never passes
//! `max_workers`; every engine exits 0 on SIGTERM and the lock ends free.

use crate::support;

use crate::support::stack::Stack;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const ENGINES: usize = 8;
const MAX_WORKERS: usize = 8;

/// op id → every `launched` line's instance ids, across all engines' logs.
fn launch_lines(logs: &[std::path::PathBuf]) -> BTreeMap<String, Vec<Vec<String>>> {
    let mut out: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for path in logs {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let message = v["message"].as_str().unwrap_or("");
            // "launch 2 instance(s) for op-…: ok: i-1, i-2"
            let Some(rest) = message.strip_prefix("launch ") else {
                continue;
            };
            let Some((head, ids)) = rest.split_once(": ok: ") else {
                continue;
            };
            let Some(op) = head.split(" for ").nth(1) else {
                continue;
            };
            out.entry(op.to_string())
                .or_default()
                .push(ids.split(", ").map(String::from).collect());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_engines_on_dynamodb_local_launch_each_operation_once() {
    // Eight engines on two cores, beside three other tests' stacks and the
    // other binaries' tests: the lock protocol must hold however slow the
    // machine is.
    let stack = Stack::up(&[
        ("STACK_SCENARIO", "flash-sale"),
        ("STACK_SCALE", "0.6"),
        // A spike every two simulated hours: one every two minutes here
        // (20 s long; a scale-up takes about 15 s of it).
        ("STACK_SPEED", "60"),
    ]);
    // EC2 through the strict proxy: every request the engines
    // send is checked against EC2's documented limits, and a token is
    // idempotent as on EC2 (moto ignores it).
    // The fleet is sampled on moto itself, once a second.
    let fleet = support::stack::ec2_client(&stack.moto_url()).await;
    let strict = support::strict_ec2::StrictEc2::start(&stack.moto_url()).await;
    stack.set_env("AWS_ENDPOINT_URL_EC2", &strict.url);
    let config = std::fs::read_to_string(&stack.config).unwrap();
    assert!(
        !config.contains("endpoint_url"),
        "the store must be reached through the environment:\n{config}"
    );

    let mut engines: Vec<_> = (0..ENGINES)
        .map(|i| stack.engine(&format!("racer-{i}"), &[]))
        .collect();
    let logs: Vec<_> = engines.iter().map(|e| e.log.clone()).collect();

    // Two spikes: wait for a completed scale-up after a completed
    // scale-down (so a second sale, not one spike's steps: any engine may
    // win any round), sampling the fleet size all along. Two rounds, not
    // three: the third cost a whole spike period (the test suite's
    // critical path), and twenty rounds of the same race on
    // DynamoDB Local run in `tests/ports/aws_concurrency.rs`.
    let start = Instant::now();
    let mut most_workers = 0usize;
    let mut ups_before_first_down: Option<usize> = None;
    loop {
        let workers = support::stack::live_workers(&fleet, "staging").await;
        most_workers = most_workers.max(workers);
        assert!(
            workers <= MAX_WORKERS,
            "{workers} workers > max_workers {MAX_WORKERS}"
        );
        let done: usize = logs
            .iter()
            .map(|l| support::stack::read_log(l).completed("scale-up").len())
            .sum();
        let downs: usize = logs
            .iter()
            .map(|l| support::stack::read_log(l).completed("scale-down").len())
            .sum();
        if downs > 0 && ups_before_first_down.is_none() {
            ups_before_first_down = Some(done);
        }
        if done >= 2 && ups_before_first_down.is_some_and(|before| done > before) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1200),
            "waited 1200 s for two scale-ups, one after a scale-down; {done} so far ({ups_before_first_down:?} before the first of {downs} scale-downs); launches {:?}",
            launch_lines(&logs)
        );
        std::thread::sleep(Duration::from_secs(1));
    }

    for engine in &mut engines {
        assert!(
            engine.terminate(false).success(),
            "an engine did not exit 0 on SIGTERM"
        );
    }

    let launches = launch_lines(&logs);
    assert!(launches.len() >= 2, "{launches:?}");
    let moto = stack.moto_url();
    let mut every_launched = BTreeSet::new();
    for (op, lines) in &launches {
        assert_eq!(lines.len(), 1, "{op} launched more than once: {lines:?}");
        let named: BTreeSet<String> = lines[0].iter().cloned().collect();
        let tagged: BTreeSet<String> =
            support::stack::instances_tagged(&moto, "k3s-autoscaler/op-id", op)
                .await
                .into_iter()
                .map(|(id, _)| id)
                .collect();
        assert_eq!(
            tagged, named,
            "{op}: EC2 holds exactly the instances its launched line names"
        );
        for id in named {
            assert!(every_launched.insert(id.clone()), "{id} claimed twice");
        }
    }
    // No instance of the cluster was launched outside an operation's line.
    let untracked: Vec<_> =
        support::stack::instances_tagged(&moto, "k3s-autoscaler/cluster", "staging")
            .await
            .into_iter()
            .filter(|(id, _)| !every_launched.contains(id))
            .collect();
    assert_eq!(
        untracked.len(),
        3,
        "only the stack's 3 first workers: {untracked:?}"
    );

    let status = stack.status();
    assert_eq!(
        status["lock"]["held"], false,
        "the lock ends free: {status}"
    );
    let refused = strict.violations();
    assert!(
        refused.is_empty(),
        "requests EC2 refuses:\n{}",
        refused.join("\n")
    );
    println!(
        "race: {ENGINES} engines, {} operations launched once each ({} scale-ups before the first scale-down), {} instances, at most {most_workers} workers (max {MAX_WORKERS}), lock free, {} RunInstances through the strict EC2 proxy",
        launches.len(),
        ups_before_first_down.unwrap_or(0),
        every_launched.len(),
        strict.launches()
    );
}
