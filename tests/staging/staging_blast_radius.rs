//! The blast radius on the real path: one misspelled word in
//! `kubernetes.worker_selector` makes the node list empty while three Ready
//! workers run their pods. Before the sanity stop, `--auto` terminated all
//! three as "never joined" in one call, then launched one more and
//! terminated it too. Now: nothing is terminated, the engine holds with a
//! reason that names the selector, `/healthz` says it is degraded, and
//! `check` fails with the same words.

use crate::support::stack::{Stack, http_get};
use std::time::{Duration, Instant};

#[test]
fn a_misspelled_selector_terminates_nothing_and_says_why() {
    let stack = Stack::up(&[
        ("STACK_SCENARIO", "steady"),
        ("STACK_SCALE", "0.6"),
        ("STACK_SPEED", "1"),
    ]);
    let before = stack.status()["workers"].as_array().unwrap().len();
    assert_eq!(before, 3);
    let typo = "\"k3s-autoscaler/role=wroker\"";
    stack.add("kubernetes", &format!("worker_selector = {typo}"));
    // Short enough that the three workers are long past it.
    stack.set("join_timeout", "\"20s\"");

    let addr = stack.metrics_addr();
    let engine = stack.engine_with("typo", &["--metrics-addr", &addr], &[]);
    // Well past join_timeout for every worker: the moment the old engine
    // would have terminated them all. Watch for a minute of ticks.
    let start = Instant::now();
    let mut held = 0usize;
    while start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_secs(2));
        let log = std::fs::read_to_string(&engine.log).unwrap_or_default();
        held = log
            .lines()
            .filter(|l| l.contains("decision: hold") && l.contains("sanity stop"))
            .count();
        assert!(
            !log.lines()
                .any(|l| l.contains("\"terminate ") || l.contains("terminate never-joined")),
            "terminated on a broken view:\n{log}"
        );
    }
    let log = std::fs::read_to_string(&engine.log).unwrap_or_default();
    assert!(held >= 5, "the engine holds with the reason:\n{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("sanity stop") && l.contains("k3s-autoscaler/role=wroker")),
        "the reason names the selector:\n{log}"
    );
    // Degraded, not down: a watchdog must not restart it for this.
    let (status, why) = http_get(&format!("http://{addr}/healthz")).unwrap();
    assert_eq!(status, 200, "{why}");
    assert!(why.contains("degraded: sanity stop"), "{why}");
    let (_, metrics) = http_get(&format!("http://{addr}/metrics")).unwrap();
    let stops: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("k3s_autoscaler_sanity_stops_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(stops >= 5.0, "{metrics}");

    // `check` says the same, now that the workers are past join_timeout.
    let check = stack.command(&["check"]).output().unwrap();
    let table = String::from_utf8_lossy(&check.stdout).to_string();
    assert!(!check.status.success(), "check must fail:\n{table}");
    assert!(
        table.contains("no node matches kubernetes.worker_selector \"k3s-autoscaler/role=wroker\""),
        "{table}"
    );
    assert!(
        table.lines().any(|l| l.starts_with("sanity")
            && l.contains("FAILED")
            && l.contains("matches no node")),
        "{table}"
    );

    // Every worker still runs, and none was added.
    let workers = stack.status()["workers"].as_array().unwrap().len();
    assert_eq!(workers, before, "{}", stack.status());
    let mut engine = engine;
    assert!(engine.terminate(false).success());
    println!(
        "typo: {held} held ticks in 60 s, {stops} sanity stops counted, {workers} workers untouched"
    );
}
