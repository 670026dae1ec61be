//! The engine as a service, on the loopback staging stack.
//! `--metrics-addr` is scraped by the stack's real Prometheus and the
//! engine's own series are queried back through the Prometheus API; a
//! pause written by one process stops the engine of another; `/healthz`
//! turns 503 when a backend goes away.

use crate::support;

use crate::support::stack::{Stack, http_get};
use std::time::{Duration, Instant};

fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "waited {timeout:?} for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn engine_metrics_in_prometheus_pause_across_processes_and_healthz() {
    let stack = Stack::up(&[("STACK_SCALE", "0.3"), ("STACK_SPEED", "20")]);
    let addr = stack.metrics_addr();
    let mut engine = stack.engine_with("service", &["--metrics-addr", &addr], &[]);
    let healthz = format!("http://{addr}/healthz");

    // Healthy once the first tick has seen every backend.
    let body = eventually("/healthz 200", Duration::from_secs(60), || {
        http_get(&healthz)
            .filter(|(s, _)| *s == 200)
            .map(|(_, b)| b)
    });
    assert!(body.starts_with("ok: last tick"), "{body}");
    let (_, metrics) = http_get(&format!("http://{addr}/metrics")).unwrap();
    for family in [
        "k3s_autoscaler_decisions_total{outcome=\"hold\"}",
        "k3s_autoscaler_lock_held ",
        "k3s_autoscaler_backend_errors_total{backend=\"prometheus\"}",
        "k3s_autoscaler_workers{state=\"running\"}",
        "k3s_autoscaler_worker_cpu_percent ",
        "k3s_autoscaler_unschedulable_pods ",
    ] {
        assert!(metrics.contains(family), "{family} missing:\n{metrics}");
    }

    // The real Prometheus scraped the engine: its series come back.
    let ticks = eventually(
        "k3s_autoscaler_ticks_total in Prometheus",
        Duration::from_secs(60),
        || {
            stack
                .query("k3s_autoscaler_ticks_total{job=\"k3s-autoscaler\"}")
                .filter(|v| *v >= 2.0)
        },
    );
    assert!(ticks >= 2.0);
    let workers = eventually("workers by state", Duration::from_secs(30), || {
        stack.query("sum(k3s_autoscaler_workers{job=\"k3s-autoscaler\"})")
    });
    assert!(workers >= 3.0, "{workers}");

    // A pause written by another process stops this engine.
    let pause = stack
        .command(&["pause", "--for", "10m", "--reason", "staging test"])
        .output()
        .unwrap();
    assert!(
        pause.status.success(),
        "{}",
        String::from_utf8_lossy(&pause.stderr)
    );
    eventually(
        "k3s_autoscaler_paused 1 in Prometheus",
        Duration::from_secs(60),
        || stack.query("k3s_autoscaler_paused{job=\"k3s-autoscaler\"} == 1"),
    );
    engine.wait_for(
        "the engine to hold on the pause",
        Duration::from_secs(30),
        |_, _| {
            std::fs::read_to_string(&engine.log)
                .unwrap_or_default()
                .contains("cluster paused by")
        },
    );
    let status = stack.status();
    assert_eq!(status["operation"]["pause"]["reason"], "staging test");
    let resume = stack.command(&["resume"]).output().unwrap();
    assert!(resume.status.success());
    eventually("k3s_autoscaler_paused 0", Duration::from_secs(60), || {
        stack.query("k3s_autoscaler_paused{job=\"k3s-autoscaler\"} == 0")
    });

    // Kubernetes goes away: /healthz says 503 and why.
    stack.stop("sim");
    let (status, why) = eventually("/healthz 503", Duration::from_secs(60), || {
        http_get(&healthz).filter(|(s, _)| *s == 503)
    });
    assert_eq!(status, 503);
    assert!(why.contains("kubernetes"), "{why}");
    let (_, metrics) = http_get(&format!("http://{addr}/metrics")).unwrap();
    assert!(
        metrics.contains("k3s_autoscaler_backend_up{backend=\"kubernetes\"} 0"),
        "{metrics}"
    );
    assert!(engine.terminate(false).success());
    // The server stopped with the engine.
    assert!(http_get(&healthz).is_none(), "metrics server still up");
}

/// An operation that cannot start is never silent: DynamoDB refusing every
/// operation write (as it refused the over-long token) is a WARN line with
/// the service's message and the operation id, a count on `/metrics`, and
/// after `engine.unhealthy_after` attempts in a row a 503 from `/healthz`
/// that says why, while nothing is launched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_operation_write_is_loud_not_silent() {
    let stack = Stack::up(&[
        ("STACK_SCENARIO", "steady"),
        ("STACK_SCALE", "1.0"),
        ("STACK_SPEED", "1"),
    ]);
    let message = "1 validation error detected: Value 'x' at 'clientRequestToken' failed to satisfy constraint: Member must have length less than or equal to 36";
    let proxy = support::proxy::CountingProxy::refusing(
        &stack.dynamodb_url(),
        "dynamodb:TransactWriteItems",
        "ValidationException",
        message,
    )
    .await;
    stack.set_env("AWS_ENDPOINT_URL_DYNAMODB", &proxy.url);
    stack.add("engine", "unhealthy_after = 2");
    let addr = stack.metrics_addr();
    let mut engine = stack.engine_with("refused", &["--metrics-addr", &addr], &[]);
    let warn = engine.wait_for(
        "a WARN line for the refused write",
        Duration::from_secs(90),
        |_, _| {
            std::fs::read_to_string(&engine.log)
                .unwrap_or_default()
                .lines()
                .any(|l| l.contains("\"WARN\"") && l.contains("operation cannot"))
        },
    );
    let log = std::fs::read_to_string(&engine.log).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("\"WARN\"") && l.contains("operation cannot"))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let text = v["message"].as_str().unwrap_or_default();
    assert!(
        text.contains("request rejected as invalid (a bug: please report)"),
        "{line}"
    );
    assert!(
        text.contains("Member must have length less than or equal to 36"),
        "{line}"
    );
    assert!(!text.contains("lock lost"), "{line}");
    assert!(
        v["op_id"].as_str().is_some_and(|id| id.starts_with("op-")),
        "the line names the operation: {line}"
    );
    assert_eq!(v["backend"], "dynamodb", "{line}");
    assert!(warn.launched.is_empty(), "nothing may launch");

    let healthz = format!("http://{addr}/healthz");
    // The WARN line is written inside a tick, before the tick is recorded:
    // wait for the 503 that gives this reason, not the "no tick yet" one.
    let (_, why) = eventually(
        "/healthz 503 for failed attempts",
        Duration::from_secs(90),
        || http_get(&healthz).filter(|(s, body)| *s == 503 && body.contains("attempts in a row")),
    );
    assert!(why.contains("request rejected as invalid"), "{why}");
    let (_, metrics) = http_get(&format!("http://{addr}/metrics")).unwrap();
    let errors: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("k3s_autoscaler_backend_errors_total{backend=\"dynamodb\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(errors >= 2.0, "{metrics}");
    assert!(engine.terminate(false).success());
    let status = stack.status();
    assert_eq!(
        status["operation"]["current"],
        serde_json::Value::Null,
        "no operation was recorded: {status}"
    );
    assert!(support::stack::read_log(&engine.log).launched.is_empty());
}
