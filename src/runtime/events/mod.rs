//! Kubernetes Events (`events.k8s.io/v1`): the engine's reasons where
//! operators already look (`kubectl describe pod/node`, `kubectl get
//! events`). What to say is the engine's (`engine/events.rs`); this is
//! the writing: a bounded queue the engine never waits on (`try_send`; a
//! full queue drops and counts), one task that aggregates repeats into
//! series and limits the rate (`series.rs`), and writes through the
//! cluster port. Events are best effort, as the API server treats them: a
//! refused write is counted and logged, never retried into a storm, and
//! never holds back a scaling step. Never started in read-only mode.

pub mod series;

use crate::engine::events::Occurrence;
use crate::ports::{ClusterApi, Timestamp};
use series::{Series, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Batches waiting for the writer: a few ticks' worth.
const QUEUE: usize = 64;

/// What happened to the events so far (for `/metrics` and tests).
#[derive(Debug, Default)]
pub struct EventStats {
    /// Creates and bumps the API server accepted.
    pub written: AtomicU64,
    /// Not written: the queue was full or the rate limit spent.
    pub dropped: AtomicU64,
    /// Refused or unanswered by the API server.
    pub failed: AtomicU64,
}

impl EventStats {
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.written.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

struct Batch {
    at: Timestamp,
    occurrences: Vec<Occurrence>,
}

/// The engine's side of the queue. Cloning shares it.
#[derive(Clone)]
pub struct EventRecorder {
    tx: mpsc::Sender<Batch>,
    stats: Arc<EventStats>,
}

impl EventRecorder {
    /// Start the writer task (on the current tokio runtime). It ends when
    /// every handle is dropped. `instance`: the engine's owner id.
    pub fn start(cluster: Arc<dyn ClusterApi>, instance: &str) -> EventRecorder {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stats = Arc::new(EventStats::default());
        tokio::spawn(run(rx, cluster, Series::new(instance), stats.clone()));
        EventRecorder { tx, stats }
    }

    pub fn stats(&self) -> Arc<EventStats> {
        self.stats.clone()
    }

    /// Queue what happened at `at`; never waits.
    pub fn tell(&self, at: Timestamp, occurrences: Vec<Occurrence>) {
        if occurrences.is_empty() {
            return;
        }
        let n = occurrences.len() as u64;
        if self.tx.try_send(Batch { at, occurrences }).is_err() {
            self.stats.dropped.fetch_add(n, Ordering::Relaxed);
        }
    }
}

async fn run(
    mut rx: mpsc::Receiver<Batch>,
    cluster: Arc<dyn ClusterApi>,
    mut series: Series,
    stats: Arc<EventStats>,
) {
    // The first refusal is worth a warning (no RBAC for events, most
    // likely); every one after it is counted and logged at debug.
    let mut warned = false;
    while let Some(batch) = rx.recv().await {
        series.expire(batch.at);
        let mut writes: Vec<Write> = series.due(batch.at);
        writes.extend(
            batch
                .occurrences
                .into_iter()
                .filter_map(|o| series.occur(o, batch.at)),
        );
        stats
            .dropped
            .fetch_add(series.take_dropped(), Ordering::Relaxed);
        for write in writes {
            match perform(cluster.as_ref(), &write).await {
                Ok(true) => {
                    stats.written.fetch_add(1, Ordering::Relaxed);
                }
                Ok(false) => {
                    // Gone (the server's TTL): the next occurrence creates it anew.
                    let (namespace, name) = names(&write);
                    series.forget(namespace, name);
                }
                Err(e) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    let (namespace, name) = names(&write);
                    series.forget(namespace, name);
                    if warned {
                        debug!(target: "events", "event {namespace}/{name} not written: {e}");
                    } else {
                        warned = true;
                        warn!(target: "events", "event {namespace}/{name} not written (events are best effort; later refusals are counted in k3s_autoscaler_events_failed_total): {e}");
                    }
                }
            }
        }
    }
}

async fn perform(cluster: &dyn ClusterApi, write: &Write) -> crate::ports::PortResult<bool> {
    match write {
        Write::Create(event) => cluster.create_event(event).await.map(|()| true),
        Write::Bump {
            namespace,
            name,
            series,
        } => cluster.bump_event(namespace, name, *series).await,
    }
}

fn names(write: &Write) -> (&str, &str) {
    match write {
        Write::Create(e) => (e.namespace(), &e.name),
        Write::Bump {
            namespace, name, ..
        } => (namespace, name),
    }
}
