//! What clients cost the façade's API: requests and bytes answered, reads
//! and watches apart, so a test can measure what an engine asks of the
//! API server (`GET /debug/api-cost`). Only the Kubernetes API is counted
//! (`/api`, `/apis`), not the test's own `/debug` calls or Prometheus's
//! `/metrics` scrapes.

use super::Facade;
use axum::body::HttpBody as _;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct ApiCost {
    requests: AtomicU64,
    /// GETs that are not watches: lists and single objects.
    reads: AtomicU64,
    watches: AtomicU64,
    /// Bytes of every answer but watch streams.
    bytes: AtomicU64,
    watch_bytes: AtomicU64,
    watch_events: AtomicU64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostSnapshot {
    pub requests: u64,
    pub reads: u64,
    pub watches: u64,
    pub bytes: u64,
    pub watch_bytes: u64,
    pub watch_events: u64,
}

impl ApiCost {
    pub fn watch_bytes(&self, n: usize) {
        self.watch_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn watch_event(&self) {
        self.watch_events.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CostSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CostSnapshot {
            requests: get(&self.requests),
            reads: get(&self.reads),
            watches: get(&self.watches),
            bytes: get(&self.bytes),
            watch_bytes: get(&self.watch_bytes),
            watch_events: get(&self.watch_events),
        }
    }
}

/// The middleware that counts each API request and its answer's size (a
/// whole answer's is exact; a watch stream counts its own lines).
pub async fn count(State(f): State<Facade>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let api = path.starts_with("/api/") || path.starts_with("/apis/");
    if !api {
        return next.run(request).await;
    }
    let query = request.uri().query().unwrap_or("");
    let watch = query
        .split('&')
        .any(|pair| pair == "watch=true" || pair == "watch=1");
    let get = request.method() == axum::http::Method::GET;
    f.cost.requests.fetch_add(1, Ordering::Relaxed);
    if watch {
        f.cost.watches.fetch_add(1, Ordering::Relaxed);
    } else if get {
        f.cost.reads.fetch_add(1, Ordering::Relaxed);
    }
    let response = next.run(request).await;
    if let Some(n) = response.body().size_hint().exact() {
        f.cost.bytes.fetch_add(n, Ordering::Relaxed);
    }
    response
}
