//! Adversarial Prometheus answers from a tiny loopback server: garbage,
//! NaN, ±Inf, empty results, HTTP 500, error answers, a stale sample, two
//! series, an answer slower than the timeout, a refused connection. Each is
//! Unknown with its reason, and the engine holds on it.

use crate::support;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use k3s_autoscaler::adapters::SystemClock;
use k3s_autoscaler::adapters::prometheus::PrometheusMetrics;
use k3s_autoscaler::config::{ConfigDuration, PrometheusConfig};
use k3s_autoscaler::engine::{Action, ClusterView, Observation, PolicyMemory, Settings, decide};
use k3s_autoscaler::ports::*;
use std::sync::Arc;
use std::time::Duration;

fn vector(value: &str, at_secs: f64) -> String {
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[{at_secs},"{value}"]}}]}}}}"#
    )
}

fn now_secs() -> f64 {
    SystemClock::new().now().0 as f64 / 1000.0
}

/// Serves one canned behaviour per path prefix; the query decides.
async fn server() -> String {
    let app = Router::new().route(
        "/{case}/api/v1/query",
        get(|axum::extract::Path(case): axum::extract::Path<String>| async move {
            let now = now_secs();
            match case.as_str() {
                "garbage" => (StatusCode::OK, "<html>proxy error</html>".to_string()),
                "nan" => (StatusCode::OK, vector("NaN", now)),
                "inf" => (StatusCode::OK, vector("+Inf", now)),
                "empty" => (StatusCode::OK, r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#.into()),
                "http500" => (StatusCode::INTERNAL_SERVER_ERROR, "oops".into()),
                "error" => (
                    StatusCode::BAD_REQUEST,
                    r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected identifier"}"#.into(),
                ),
                "stale" => (StatusCode::OK, vector("42", now - 600.0)),
                "two" => (
                    StatusCode::OK,
                    format!(r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"a":"1"}},"value":[{now},"1"]}},{{"metric":{{"a":"2"}},"value":[{now},"2"]}}]}}}}"#),
                ),
                "slow" => {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    (StatusCode::OK, vector("50", now))
                }
                _ => (StatusCode::OK, vector("95", now)),
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

fn adapter(url: String) -> PrometheusMetrics {
    let config = PrometheusConfig {
        url,
        timeout: ConfigDuration(Duration::from_millis(500)),
        max_staleness: ConfigDuration::secs(120),
        ..PrometheusConfig::default()
    };
    PrometheusMetrics::new(&config, Arc::new(SystemClock::new())).unwrap()
}

/// A world that would scale up on any real reading: CPU would be the only
/// question, and pods have been pending for ten minutes.
fn observation(cpu: Reading, now: Timestamp) -> Observation {
    let node = |i: usize| Node {
        name: format!("w{i}"),
        instance_id: Some(format!("w{i}")),
        ready: true,
        cordoned: false,
        startup_taint: false,
        allocatable: Resources::new(1_900, 7 << 30),
        labels: Default::default(),
        annotations: Default::default(),
        created: Timestamp(0),
        ready_since: Timestamp(0),
    };
    let pending: Pod = PodFields {
        namespace: "default".into(),
        name: "web-x".into(),
        uid: "u".into(),
        node_name: None,
        phase: PodPhase::Pending,
        owner_kind: Some("ReplicaSet".into()),
        labels: Default::default(),
        annotations: Default::default(),
        priority_class: None,
        volumes: vec![],
        requests: Resources::new(300, 1 << 29),
        unschedulable_since: Some(now.minus(Duration::from_secs(600))),
        terminating: false,
        node_selector: Default::default(),
        scheduling_gates: Vec::new(),
    }
    .into();
    let instance = |i: usize| Instance {
        id: format!("w{i}"),
        state: InstanceState::Running,
        instance_type: "t3.large".into(),
        zone: "a".into(),
        private_ip: None,
        subnet: None,
        launched_at: Timestamp(0),
        op_id: None,
        managed: true,
    };
    Observation {
        cpu_partial: None,
        at: now,
        cpu,
        cluster: Ok(ClusterView {
            nodes: (0..3).map(node).collect(),
            pods: vec![pending],
            pdbs: vec![],
        }),
        fleet: Ok((0..3).map(instance).collect()),
    }
}

#[tokio::test]
async fn every_bad_answer_is_unknown_with_its_reason_and_never_scales() {
    let base = server().await;
    let refused = format!("http://127.0.0.1:{}", support::free_port());
    let cases: Vec<(String, &str)> = vec![
        (format!("{base}/garbage"), "not a Prometheus API answer"),
        (format!("{base}/nan"), "value is NaN"),
        (format!("{base}/inf"), "value is inf"),
        (format!("{base}/empty"), "no data"),
        (format!("{base}/http500"), "HTTP 500"),
        (format!("{base}/error"), "bad_data"),
        (format!("{base}/stale"), "stale"),
        (format!("{base}/two"), "2 series"),
        (format!("{base}/slow"), "no answer within 500ms"),
        (refused, "cannot connect"),
    ];
    let clock = SystemClock::new();
    for (url, expected) in cases {
        let reading = adapter(url.clone()).instant(Signal::WorkerCpu).await;
        let Reading::Unknown { reason } = &reading else {
            panic!("{url}: expected Unknown, got {reading:?}");
        };
        assert!(
            reason.contains(expected),
            "{url}: reason {reason:?} lacks {expected:?}"
        );
        assert!(
            reason.starts_with("worker CPU"),
            "the reason names the signal: {reason}"
        );
        let now = clock.now();
        let decision = decide(
            &Settings::default(),
            &mut PolicyMemory::default(),
            &observation(reading, now),
            &OpRecord::default(),
            now,
        );
        assert_eq!(
            decision.action,
            Action::Hold,
            "{url}: {}",
            decision.summary()
        );
        assert!(
            decision.summary().contains("CPU Unknown"),
            "{}",
            decision.summary()
        );
    }
    // The same world with a real reading does scale: the test can fail.
    let now = clock.now();
    let good = adapter(format!("{base}/fine"))
        .instant(Signal::WorkerCpu)
        .await;
    let decision = decide(
        &Settings::default(),
        &mut PolicyMemory::default(),
        &observation(good, now),
        &OpRecord::default(),
        now,
    );
    assert!(
        matches!(decision.action, Action::ScaleUp { .. }),
        "{}",
        decision.summary()
    );
}

#[tokio::test]
async fn credentials_come_from_the_environment_variable_named_in_the_config() {
    let config = PrometheusConfig {
        bearer_token_env: Some("K3SA_TEST_UNSET_TOKEN_VARIABLE".into()),
        ..PrometheusConfig::default()
    };
    let err = PrometheusMetrics::new(&config, Arc::new(SystemClock::new()))
        .err()
        .unwrap();
    assert!(err.contains("K3SA_TEST_UNSET_TOKEN_VARIABLE"), "{err}");
}

// The other half (a set variable is sent) is tests/ports/prometheus_credentials.rs:
// its variables are set for a process of their own.
