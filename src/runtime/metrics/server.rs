//! `--metrics-addr`: `/metrics` for Prometheus, `/healthz` for systemd
//! watchdogs and load balancers. Runs beside the tick loop and stops with
//! the same shutdown.

use super::EngineMetrics;
use crate::runtime::Shutdown;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
struct Served {
    metrics: Arc<EngineMetrics>,
    max_tick_age: Duration,
}

/// Bind first, so a taken port is an error at start-up, not a log line
/// from a background task.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("--metrics-addr {addr}: cannot listen: {e}"))
}

/// Serve until `shutdown`. `max_tick_age`: how old the last tick may be
/// before `/healthz` says 503.
pub fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<EngineMetrics>,
    max_tick_age: Duration,
    shutdown: Shutdown,
) -> tokio::task::JoinHandle<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(healthz))
        .with_state(Served {
            metrics,
            max_tick_age,
        });
    tokio::spawn(async move {
        let stop = async move { shutdown.wait().await };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::warn!(target: "runtime", "metrics server stopped: {e}");
        }
    })
}

async fn metrics_page(State(s): State<Served>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn healthz(State(s): State<Served>) -> impl IntoResponse {
    match s.metrics.health(s.max_tick_age) {
        Ok(why) => (StatusCode::OK, why + "\n"),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why + "\n"),
    }
}
