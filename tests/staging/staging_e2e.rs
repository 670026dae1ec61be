//! The whole real path on a loopback staging stack: moto (EC2, DynamoDB),
//! the simulator's Kubernetes façade, Debian's real Prometheus, and the
//! real `k3s-autoscaler --auto`. Load rises → pods go unschedulable →
//! instances are launched in moto → the façade registers their nodes → the
//! engine verifies them Ready; load falls → a node is cordoned, drained
//! through evictions (PDB refusals retried) and its instance terminated.
//! Along the way, what the engine said is read back from the API server's
//! Events as `kubectl get events` reads them: `TriggeredScaleUp` on the
//! pods the scale-up was for, `ScaleDown` on the drained node,
//! `NotTriggerScaleUp` with why on a pod too big for any worker; and a
//! node annotated `k3s-autoscaler/scale-down-disabled` is never chosen.

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

    // `kubectl annotate node N k3s-autoscaler/scale-down-disabled=true`,
    // and a Job whose one pod asks for 64 CPUs.
    let sim = stack.sim_url();
    let first = stack.status()["nodes"][0].clone();
    let kept = first["name"].as_str().expect("a node name").to_string();
    let kept_instance = first["instance_id"].as_str().unwrap_or(&kept).to_string();
    let annotate = support::stack::http_send(
        "PATCH",
        &format!("{sim}/api/v1/nodes/{kept}"),
        Some((
            "application/merge-patch+json",
            r#"{"metadata":{"annotations":{"k3s-autoscaler/scale-down-disabled":"true"}}}"#,
        )),
    );
    assert_eq!(annotate.map(|(code, _)| code), Some(200));
    let job = support::stack::http_send("POST", &format!("{sim}/debug/jobs/render/1/64000"), None);
    assert_eq!(job.map(|(code, _)| code), Some(200));

    let addr = stack.metrics_addr();
    let mut engine = stack.engine_with("engine", &["--metrics-addr", &addr], &[]);
    let seen = engine.wait_for(
        "a scale-up and a scale-down through evictions",
        Duration::from_secs(300),
        |s, _| {
            !s.completed("scale-up").is_empty()
                && !s.completed("scale-down").is_empty()
                && !s.evicted.is_empty()
        },
    );
    let watched = watch_figures(&stack, &addr);
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
    let events = events_said(&stack, &seen, &kept);
    assert!(
        !seen.terminated.contains(&kept_instance),
        "the annotated node's instance was terminated"
    );
    println!(
        "staging: {} scale-up(s), {} scale-down(s), {} evictions ({} PDB refusals retried), final {} workers; {events}; {watched}",
        seen.completed("scale-up").len(),
        seen.completed("scale-down").len(),
        seen.evicted.len(),
        seen.refused_by_pdb,
        live.len()
    );
}

/// The engine observed the cluster through watches (the façade served
/// watches, and a tick was woken by one), and measured the latencies it
/// reports: a line of them for the output.
fn watch_figures(stack: &Stack, addr: &str) -> String {
    let (_, metrics) = support::stack::http_get(&format!("http://{addr}/metrics"))
        .expect("the engine serves /metrics");
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
    };
    let wakes = value("k3s_autoscaler_wakes_total ");
    let ups = value("k3s_autoscaler_scale_up_latency_seconds_count ");
    let up_sum = value("k3s_autoscaler_scale_up_latency_seconds_sum ");
    let verifies = value("k3s_autoscaler_verify_latency_seconds_count ");
    let verify_sum = value("k3s_autoscaler_verify_latency_seconds_sum ");
    assert!(wakes >= 1.0, "no tick was woken by a watch:\n{metrics}");
    assert!(
        ups >= 1.0 && verifies >= 1.0,
        "latencies not measured:\n{metrics}"
    );
    let (_, cost) = support::stack::http_get(&format!("{}/debug/api-cost", stack.sim_url()))
        .expect("the façade counts its API");
    let cost: serde_json::Value = serde_json::from_str(&cost).expect("counters");
    assert!(cost["watches"].as_u64().unwrap_or(0) >= 3, "{cost}");
    format!(
        "watch: {wakes} wakes, scale-up latency mean {:.1} s over {ups}, verify latency mean {:.1} s over {verifies}; façade: {cost}",
        up_sum / ups,
        verify_sum / verifies
    )
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

/// The Events the run left, judged against what the engine did; a line
/// of counts for the test's output.
fn events_said(stack: &Stack, seen: &support::stack::Seen, kept: &str) -> String {
    let (code, body) =
        support::stack::http_get(&format!("{}/apis/events.k8s.io/v1/events", stack.sim_url()))
            .expect("the façade lists events");
    assert_eq!(code, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).expect("an EventList");
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let with = |reason: &str| -> Vec<serde_json::Value> {
        items
            .iter()
            .filter(|e| e["reason"] == reason)
            .cloned()
            .collect()
    };
    let scale_ups: Vec<&String> = seen
        .ops
        .iter()
        .filter(|(_, (kind, _))| kind == "scale-up")
        .map(|(id, _)| id)
        .collect();
    // Told in the tick that started the scale-up: its note names it.
    let triggered = with("TriggeredScaleUp");
    assert!(!triggered.is_empty(), "no TriggeredScaleUp in {items:#?}");
    for e in &triggered {
        let note = e["note"].as_str().unwrap_or("");
        assert_eq!(e["regarding"]["kind"], "Pod", "{e}");
        assert!(
            scale_ups
                .iter()
                .any(|id| note.ends_with(&format!("({id})"))),
            "{note} names none of the scale-ups {scale_ups:?}"
        );
    }
    let render: Vec<_> = with("NotTriggerScaleUp")
        .into_iter()
        .filter(|e| {
            e["regarding"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("render"))
        })
        .collect();
    assert_eq!(render.len(), 1, "{items:#?}");
    assert_eq!(
        render[0]["note"],
        "pod didn't trigger scale-up: requests more than a new worker offers"
    );
    let drained = with("ScaleDown");
    assert!(!drained.is_empty(), "no ScaleDown in {items:#?}");
    for e in &drained {
        assert_eq!(e["regarding"]["kind"], "Node", "{e}");
        assert_ne!(
            e["regarding"]["name"], kept,
            "the annotated node was chosen"
        );
        assert_eq!(e["metadata"]["namespace"], "default");
    }
    format!(
        "events: {} TriggeredScaleUp, {} ScaleDown, NotTriggerScaleUp for the 64-CPU pod counted {}",
        triggered.len(),
        drained.len(),
        render[0]["series"]["count"].as_u64().unwrap_or(1)
    )
}
