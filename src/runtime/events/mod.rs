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
use crate::ports::{ClusterApi, PortError, Timestamp};
use series::{Series, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Batches waiting for the writer: a few ticks' worth.
const QUEUE: usize = 64;
/// No writes for this long after a 401/403 (no RBAC for events).
const REFUSED_PAUSE: std::time::Duration = std::time::Duration::from_secs(5 * 60);

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

    /// Queue what happened at `at`; never waits. An empty batch is sent
    /// too: it is the writer's clock, on which the bumps a quiet series
    /// still owes are written.
    pub fn tell(&self, at: Timestamp, occurrences: Vec<Occurrence>) {
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
    // The first failure of each kind is worth a warning (a 403: no RBAC
    // for events, most likely; a 5xx: the API server is struggling); every
    // one after it is counted and logged at debug.
    let mut warned: Vec<std::mem::Discriminant<PortError>> = Vec::new();
    // After a 401/403 (`Refused`: no RBAC for events), nothing is written
    // for a while: a cluster without the RBAC would otherwise see every
    // pending pod refused every tick. Other failures concern one write.
    let mut quiet_until: Option<Timestamp> = None;
    while let Some(batch) = rx.recv().await {
        let mut writes: Vec<Write> = series.expire(batch.at);
        writes.extend(series.due(batch.at));
        writes.extend(
            batch
                .occurrences
                .into_iter()
                .filter_map(|o| series.occur(o, batch.at)),
        );
        stats
            .dropped
            .fetch_add(series.take_dropped(), Ordering::Relaxed);
        let mut writes = writes.into_iter();
        if quiet_until.is_some_and(|until| batch.at < until) {
            // Counted into their series all the same (a pod that waits
            // through the pause keeps its one event), but not sent.
            unsent(writes, &mut series, &stats);
            continue;
        }
        while let Some(write) = writes.next() {
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
                    // A create whose answer was lost may be on the server:
                    // kept (a bump that finds it gone forgets it then).
                    let lost_answer = matches!(
                        (&write, &e),
                        (Write::Create(_), PortError::OutcomeUnknown(_))
                    );
                    if !lost_answer {
                        series.not_written(&write);
                    }
                    let refused = matches!(e, PortError::Refused(_));
                    let kind = std::mem::discriminant(&e);
                    if warned.contains(&kind) {
                        debug!(target: "events", "event {namespace}/{name} not written: {e}");
                    } else {
                        warned.push(kind);
                        warn!(target: "events", "event {namespace}/{name} not written (events are best effort; later failures are counted in k3s_autoscaler_events_failed_total{}): {e}", if refused { ", and none is written for 5m" } else { "" });
                    }
                    if refused {
                        quiet_until = Some(batch.at.plus(REFUSED_PAUSE));
                        // The rest of this batch would meet the same answer.
                        unsent(writes.by_ref(), &mut series, &stats);
                    }
                }
            }
        }
    }
}

/// Writes not sent (the writer is paused after a 401/403): counted as
/// dropped, and not written as far as their series go.
fn unsent(writes: impl Iterator<Item = Write>, series: &mut Series, stats: &EventStats) {
    for write in writes {
        stats.dropped.fetch_add(1, Ordering::Relaxed);
        series.not_written(&write);
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
