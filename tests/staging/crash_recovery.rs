//! Crash recovery on the real path: the real `--auto` binary is
//! stopped dead at each step boundary of docs/architecture.md §3 (a failpoint, compiled
//! in only with the `failpoints` feature) and `kill -9`ed there; a fresh
//! process takes over once the lease expires. The operation must converge
//! with no leaked instance and no double launch. Then SIGTERM at the same
//! points: exit 0 within 10 s, the lock released, the operation intact.

use crate::support;

use crate::support::stack::{Seen, Stack, instances_tagged};
use std::time::Duration;

/// A stack whose load calls for a scale-up (`busy`) or a scale-down, with a
/// short lease so a takeover after a crash comes quickly (the shortest
/// the config allows with a 1 s margin: a side effect must fit in it).
fn stack(busy: bool) -> Stack {
    let scale = if busy { "1.0" } else { "0.1" };
    let stack = Stack::up(&[
        ("STACK_SCENARIO", "steady"),
        ("STACK_SCALE", scale),
        ("STACK_SPEED", "1"),
    ]);
    stack.set("lease", "\"25s\"");
    stack.set("skew_margin", "\"1s\"");
    stack
}

fn current_op(stack: &Stack) -> serde_json::Value {
    stack.status()["operation"]["current"].clone()
}

/// The scale-up is Done; every instance tagged with its op id is one it
/// recorded (no double launch), and every live worker is a Ready node (no leak).
async fn assert_scale_up_converged(stack: &Stack, op_id: &str) {
    let op = current_op(stack);
    assert_eq!(op["id"], op_id, "{op}");
    assert_eq!(op["phase"], "Done", "{op}");
    let count = op["detail"]["count"].as_u64().unwrap() as usize;
    let recorded: Vec<String> = op["detail"]["instance_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let tagged = instances_tagged(&stack.moto_url(), "k3s-autoscaler/op-id", op_id).await;
    assert_eq!(
        tagged.len(),
        count,
        "double launch: {tagged:?} for a scale-up of {count}"
    );
    for (id, _) in &tagged {
        assert!(
            recorded.contains(id),
            "{id} launched but not recorded: {recorded:?}"
        );
    }
    assert_no_leak(stack);
}

/// A scale-down ended Done: exactly its node's instance is gone, and every
/// live worker is a Ready node.
async fn assert_scale_down_converged(stack: &Stack, op_id: &str, workers_before: usize) {
    let op = current_op(stack);
    assert_eq!(op["id"], op_id, "{op}");
    assert_eq!(op["phase"], "Done", "{op}");
    let node = op["detail"]["node"].as_str().unwrap().to_string();
    let workers = stack.status()["workers"].as_array().unwrap().clone();
    assert_eq!(
        workers.len(),
        workers_before - 1,
        "exactly one worker removed: {workers:?}"
    );
    assert!(
        !workers.iter().any(|w| w["id"] == node.as_str()),
        "{node} is still live"
    );
    assert_no_leak(stack);
}

fn assert_no_leak(stack: &Stack) {
    let status = stack.status();
    let nodes = status["nodes"].as_array().unwrap();
    for w in status["workers"].as_array().unwrap() {
        let id = w["id"].as_str().unwrap();
        assert!(
            nodes
                .iter()
                .any(|n| n["instance_id"] == id && n["ready"] == true),
            "{id} is a live instance with no Ready node: leaked"
        );
    }
}

/// How long a step may take to be seen: a bound for a failure, not a
/// figure (four stacks share two cores with the build and the chaos seeds;
/// a busy stack's first scale-up has taken 150 s there).
const WAIT: u64 = 300;

fn wait_done(engine: &support::stack::Engine, op_id: &str) -> Seen {
    engine.wait_for(
        &format!("{op_id} to end"),
        Duration::from_secs(WAIT),
        |s, _| matches!(s.phase_of(op_id), Some("Done" | "Failed" | "Aborted")),
    )
}

async fn crash_at(failpoint: &str, busy: bool) {
    let stack = stack(busy);
    let workers_before = stack.status()["workers"].as_array().unwrap().len();
    let mut first = stack.engine("first", &[("K3SA_FAILPOINT", failpoint)]);
    first.wait_for(
        &format!("failpoint {failpoint}"),
        Duration::from_secs(WAIT),
        |_, err| err.contains(&format!("failpoint {failpoint} reached")),
    );
    first.kill_9();
    let op = current_op(&stack);
    let op_id = op["id"]
        .as_str()
        .expect("an operation was recorded before the crash")
        .to_string();
    assert_ne!(op["phase"], "Done", "{op}");

    // A new process, after the dead one's lease ran out, adopts and finishes.
    let second = stack.engine("second", &[]);
    let seen = wait_done(&second, &op_id);
    assert_eq!(seen.phase_of(&op_id), Some("Done"), "{seen:#?}");
    if busy {
        assert_scale_up_converged(&stack, &op_id).await;
    } else {
        assert_scale_down_converged(&stack, &op_id, workers_before).await;
    }
    println!(
        "{failpoint}: {} converged after kill -9 ({:?})",
        op_id,
        seen.ops.get(&op_id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_the_intent_write() {
    crash_at("after-intent", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_run_instances_before_recording() {
    crash_at("after-launch", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_drain() {
    crash_at("mid-drain", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_terminate_before_recording() {
    crash_at("after-terminate", false).await;
}

/// SIGTERM at each step boundary: the step in hand is recorded, no new one
/// starts, the lock is released, exit 0 within 10 s; a restart finishes.
async fn sigterm_at(point: &str, busy: bool) {
    let stack = stack(busy);
    let workers_before = stack.status()["workers"].as_array().unwrap().len();
    let mut engine = stack.engine("first", &[("K3SA_SIGTERM_AT", point)]);
    // From the moment the signal goes out (the failpoint says so), not from
    // spawn: the 10 s is the shutdown's own budget.
    let sent = engine.stderr_line(
        &format!("failpoint {point}: sending SIGTERM"),
        Duration::from_secs(WAIT),
    );
    let status = engine.exit_within(Duration::from_secs(30));
    let took = sent.elapsed();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        took < Duration::from_secs(10),
        "SIGTERM at {point}: exit took {took:?}"
    );
    let after = stack.status();
    assert_eq!(
        after["lock"]["held"], false,
        "lock not released: {}",
        after["lock"]
    );
    let op = after["operation"]["current"].clone();
    let op_id = op["id"]
        .as_str()
        .expect("an operation in flight")
        .to_string();
    let log = std::fs::read_to_string(&engine.log).unwrap();
    assert!(
        log.contains("shutdown requested") || log.contains("shutting down"),
        "{log}"
    );
    let second = stack.engine("second", &[]);
    if op["phase"] == "Aborted" {
        // Stopped between the intent and its effect: the abort is recorded
        // (an intent never outlives the process that decided it), nothing
        // was launched for it, and the next engine decides afresh.
        assert_eq!(point, "after-intent", "{op}");
        assert!(
            op["outcome"]
                .as_str()
                .is_some_and(|o| o.contains("stopped before acting")),
            "{op}"
        );
        let tagged = instances_tagged(&stack.moto_url(), "k3s-autoscaler/op-id", &op_id).await;
        assert!(tagged.is_empty(), "the aborted intent launched {tagged:?}");
        let seen = second.wait_for(
            "a fresh scale-up after the abort",
            Duration::from_secs(WAIT),
            |s, _| !s.completed("scale-up").is_empty(),
        );
        let (fresh, _) = seen
            .ops
            .iter()
            .find(|(_, (k, p))| k == "scale-up" && p.last().map(String::as_str) == Some("Done"))
            .expect("a completed scale-up");
        assert_scale_up_converged(&stack, fresh).await;
        println!("SIGTERM at {point}: {op_id} recorded Aborted; {fresh} scaled up after restart");
        // This point's checks are all above (aborted, then a fresh
        // scale-up converged); the phase checks below are for the others.
        return;
    }
    // The phase the stop left the operation in is the one the point names:
    // a shutdown finishes the call it is in, records it, and stops there.
    let expected: &[&str] = match point {
        "after-launch" => &["Launched", "Verifying"],
        "mid-drain" => &["Draining"],
        "after-terminate" => &["TerminateIntended"],
        other => panic!("SIGTERM at {other}: the operation was left in {op}"),
    };
    let phase = op["phase"].as_str().unwrap_or_default();
    assert!(
        expected.contains(&phase),
        "SIGTERM at {point}: left in {phase}, expected one of {expected:?}: {op}"
    );
    let seen = wait_done(&second, &op_id);
    assert_eq!(seen.phase_of(&op_id), Some("Done"), "{seen:#?}");
    if busy {
        assert_scale_up_converged(&stack, &op_id).await;
    } else {
        assert_scale_down_converged(&stack, &op_id, workers_before).await;
    }
    println!("SIGTERM at {point}: left {op_id} in {phase} after {took:?}, finished after restart");
}

// One test per phase, each on its own stack: run one after the other
// they were the staging binary's longest chain (224 s) but for the race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_after_the_intent_write() {
    sigterm_at("after-intent", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_after_run_instances() {
    sigterm_at("after-launch", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_drain() {
    sigterm_at("mid-drain", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_after_terminate_before_recording() {
    sigterm_at("after-terminate", false).await;
}
