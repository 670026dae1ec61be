//! The whole real path on a loopback staging stack: moto (EC2, DynamoDB),
//! the simulator's Kubernetes façade, Debian's real Prometheus, and the
//! real `k3s-autoscaler --auto`. Load rises → pods go unschedulable →
//! instances are launched in moto → the façade registers their nodes → the
//! engine verifies them Ready; load falls → a node is cordoned, drained
//! through evictions (PDB refusals retried) and its instance terminated.

use crate::support;

use crate::support::stack::Stack;
use std::time::Duration;

#[test]
fn staging_end_to_end_scale_up_then_down_through_evictions() {
    let stack = Stack::up(&[("STACK_SCALE", "0.3"), ("STACK_SPEED", "20")]);

    // `check` sees all four backends.
    let check = stack.command(&["check"]).output().unwrap();
    let table = String::from_utf8_lossy(&check.stdout).to_string();
    assert!(
        check.status.success(),
        "check failed:\n{table}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for backend in ["prometheus", "kubernetes", "ec2", "dynamodb"] {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(backend) && l.contains(" ok ")),
            "{backend} not ok:\n{table}"
        );
    }
    let initial = stack.status()["workers"].as_array().unwrap().len();
    assert_eq!(initial, 3);

    let mut engine = stack.engine("engine", &[]);
    let seen = engine.wait_for(
        "a scale-up and a scale-down through evictions",
        Duration::from_secs(300),
        |s, _| {
            !s.completed("scale-up").is_empty()
                && !s.completed("scale-down").is_empty()
                && !s.evicted.is_empty()
        },
    );
    // SIGTERM: exits 0 within 10 s, the lock released.
    assert!(engine.terminate(false).success());
    let seen = support::stack::read_log(&engine.log).clone_or(seen);

    for phases in seen.completed("scale-up") {
        // The second LaunchIntended write is the launch plan (type, subnet,
        // client token), recorded before RunInstances is sent.
        assert_eq!(
            phases,
            [
                "LaunchIntended",
                "LaunchIntended",
                "Launched",
                "Verifying",
                "Done"
            ],
            "{seen:#?}"
        );
    }
    for phases in seen.completed("scale-down") {
        assert_eq!(
            phases,
            ["CordonIntended", "Draining", "TerminateIntended", "Done"],
            "{seen:#?}"
        );
    }

    // What EC2 and Kubernetes say at the end agrees with what was done.
    let after = stack.status();
    let live: Vec<String> = after["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_string())
        .collect();
    for gone in &seen.terminated {
        assert!(
            !live.contains(gone),
            "terminated {gone} is still live in EC2"
        );
    }
    assert_eq!(
        live.len(),
        initial + seen.launched.len() - seen.terminated.len(),
        "live {live:?} vs {seen:#?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let nodes = stack.status()["nodes"].as_array().unwrap().clone();
    for id in &live {
        assert!(
            nodes
                .iter()
                .any(|n| n["instance_id"] == id.as_str() && n["ready"] == true),
            "{id} has no Ready node: {nodes:?}"
        );
    }
    assert_eq!(
        after["lock"]["held"], false,
        "the lock was released on SIGTERM"
    );
    println!(
        "staging: {} scale-up(s), {} scale-down(s), {} evictions ({} PDB refusals retried), final {} workers",
        seen.completed("scale-up").len(),
        seen.completed("scale-down").len(),
        seen.evicted.len(),
        seen.refused_by_pdb,
        live.len()
    );
}

trait CloneOr {
    fn clone_or(self, other: support::stack::Seen) -> support::stack::Seen;
}

impl CloneOr for support::stack::Seen {
    /// The full log after exit (it may hold more than what was waited for).
    fn clone_or(self, other: support::stack::Seen) -> support::stack::Seen {
        if self.ops.len() >= other.ops.len() {
            self
        } else {
            other
        }
    }
}
