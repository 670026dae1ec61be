//! Prometheus credentials from the environment: a set variable is sent as
//! the `Authorization` header (bearer or basic), a refused one is Unknown
//! with the status and without the secret. The variables are set in a
//! process of their own (`support/own_process.rs`): writing the environment
//! of a process whose other tests run on other threads is unsound.

use crate::support::own_process;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use k3s_autoscaler::adapters::SystemClock;
use k3s_autoscaler::adapters::prometheus::PrometheusMetrics;
use k3s_autoscaler::config::{ConfigDuration, PrometheusConfig};
use k3s_autoscaler::ports::*;
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "k3sa-test-token-5f1c";

fn vector(value: &str, at_secs: f64) -> String {
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[{at_secs},"{value}"]}}]}}}}"#
    )
}

fn now_secs() -> f64 {
    SystemClock::new().now().0 as f64 / 1000.0
}

/// The other half: a variable that is set is sent, as the header its kind
/// says (a server that answers only the right `Authorization` header), and
/// a wrong one is Unknown with the server's 401, never a reading. The
/// checks run in a child process with the variables set from its start.
#[test]
fn a_set_credential_variable_is_sent_as_the_authorization_header() {
    own_process::run_child(
        module_path!(),
        "credentials_in_a_process_of_their_own",
        &[
            ("K3SA_TEST_PROM_TOKEN", TOKEN),
            ("K3SA_TEST_PROM_WRONG", "not-the-token"),
            ("K3SA_TEST_PROM_PASSWORD", "pw-77"),
        ],
    );
}

/// The child of the test above (nothing writes the environment: its parent
/// set it for this process).
#[test]
#[ignore = "run by a_set_credential_variable_is_sent_as_the_authorization_header"]
fn credentials_in_a_process_of_their_own() {
    own_process::as_child(credentials_are_sent);
}

async fn credentials_are_sent() {
    let app = Router::new().route(
        "/api/v1/query",
        get(|headers: axum::http::HeaderMap| async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            // base64("ops:pw-77")
            if auth == format!("Bearer {TOKEN}") || auth == "Basic b3BzOnB3LTc3" {
                (StatusCode::OK, vector("42", now_secs()))
            } else {
                (StatusCode::UNAUTHORIZED, "Unauthorized".to_string())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let with = |config: PrometheusConfig| {
        PrometheusMetrics::new(
            &PrometheusConfig {
                url: url.clone(),
                timeout: ConfigDuration(Duration::from_secs(5)),
                max_staleness: ConfigDuration::secs(120),
                ..config
            },
            Arc::new(SystemClock::new()),
        )
        .unwrap()
    };
    let bearer = with(PrometheusConfig {
        bearer_token_env: Some("K3SA_TEST_PROM_TOKEN".into()),
        ..PrometheusConfig::default()
    });
    match bearer.instant(Signal::WorkerCpu).await {
        Reading::Known { value, .. } => assert_eq!(value, 42.0),
        other => panic!("the token was not sent: {other:?}"),
    }
    let basic = with(PrometheusConfig {
        basic_auth_user: Some("ops".into()),
        basic_auth_password_env: Some("K3SA_TEST_PROM_PASSWORD".into()),
        ..PrometheusConfig::default()
    });
    assert!(matches!(
        basic.instant(Signal::WorkerCpu).await,
        Reading::Known { .. }
    ));
    let wrong = with(PrometheusConfig {
        bearer_token_env: Some("K3SA_TEST_PROM_WRONG".into()),
        ..PrometheusConfig::default()
    });
    match wrong.instant(Signal::WorkerCpu).await {
        Reading::Unknown { reason } => {
            assert!(reason.contains("401"), "{reason}");
            assert!(!reason.contains("not-the-token"), "{reason}");
        }
        other => panic!("a refused credential gave {other:?}"),
    }
    let none = with(PrometheusConfig::default());
    assert!(matches!(
        none.instant(Signal::WorkerCpu).await,
        Reading::Unknown { .. }
    ));
}
