//! Notifications (`[notify]`): what an operator wants to hear without
//! watching the console — operations starting and ending, the circuit
//! breaker opening and closing, new reconciliation findings — posted to a
//! webhook (Slack-compatible or plain JSON).
//!
//! The engine never waits for it: a notice goes into a bounded queue
//! (`try_send`; a full queue drops it and counts the drop) and one
//! background task delivers them in order, retrying with a doubling
//! back-off. The webhook URL is a secret (a Slack URL is its own
//! credential): it comes from an environment variable the config names,
//! and no error, log line or metric carries it.

mod deliver;
pub mod notices;
mod payload;

pub use deliver::Delivery;
pub use notices::{Notice, NoticeKind};
pub use payload::Format;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

/// What happened to the notices so far (for `/metrics` and tests).
#[derive(Debug, Default)]
pub struct NotifyStats {
    pub sent: AtomicU64,
    /// Dropped because the queue was full (the receiver slow or down).
    pub dropped: AtomicU64,
    /// Given up after the last attempt, or refused for good (a 4xx).
    pub failed: AtomicU64,
    /// The last delivery error, without the URL.
    last_error: Mutex<Option<String>>,
    /// Queued or being delivered (for `flush`).
    pending: AtomicU64,
}

impl NotifyStats {
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_error(&self, e: String) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    }

    fn count(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn counts(&self) -> (u64, u64, u64) {
        (
            Self::count(&self.sent),
            Self::count(&self.dropped),
            Self::count(&self.failed),
        )
    }
}

/// The engine's side of the queue. Cloning shares the queue.
#[derive(Clone)]
pub struct Notifier {
    tx: mpsc::Sender<Notice>,
    cluster: String,
    stats: Arc<NotifyStats>,
}

impl Notifier {
    /// Start the delivery task (on the current tokio runtime) and return
    /// the handle that queues notices for it. The task ends when every
    /// handle is dropped.
    pub fn start(url: String, cluster: &str, format: Format, delivery: Delivery) -> Notifier {
        let (tx, rx) = mpsc::channel(delivery.queue.max(1));
        let stats = Arc::new(NotifyStats::default());
        tokio::spawn(deliver::run(rx, url, format, delivery, stats.clone()));
        Notifier {
            tx,
            cluster: cluster.to_string(),
            stats,
        }
    }

    /// Queue a notice; never waits. A full queue drops it (counted).
    pub fn send(&self, mut notice: Notice) {
        notice.cluster = self.cluster.clone();
        self.stats.pending.fetch_add(1, Ordering::SeqCst);
        if self.tx.try_send(notice).is_err() {
            self.stats.pending.fetch_sub(1, Ordering::SeqCst);
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// At exit: wait, at most `patience`, for what is queued to be
    /// delivered or given up (the last operation's end, a shutdown's
    /// abort). What is still queued after it is lost, as a crash loses it.
    pub async fn flush(&self, patience: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + patience;
        while self.stats.pending.load(Ordering::SeqCst) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub fn stats(&self) -> Arc<NotifyStats> {
        self.stats.clone()
    }
}

/// The notifier `[notify]` asks for: `Ok(None)` when `url_env` is unset.
/// An unset or malformed URL is an error that names the variable, never
/// its value.
pub fn from_config(
    config: &crate::config::NotifyConfig,
    cluster: &str,
) -> Result<Option<Notifier>, String> {
    let Some(var) = &config.url_env else {
        return Ok(None);
    };
    let url = std::env::var(var).unwrap_or_default();
    if url.trim().is_empty() {
        return Err(format!(
            "notify.url_env names {var}, which is not set: export the webhook URL in it, or remove notify.url_env"
        ));
    }
    let scheme_ok = reqwest::Url::parse(url.trim())
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
    if !scheme_ok {
        return Err(format!(
            "the webhook URL in {var} is not an http(s) URL (its value is not shown: it is a secret)"
        ));
    }
    let format = Format::parse(&config.format).unwrap_or(Format::Slack);
    let delivery = Delivery {
        queue: config.queue as usize,
        attempts: config.attempts,
        timeout: config.timeout.get(),
        ..Delivery::default()
    };
    Ok(Some(Notifier::start(
        url.trim().to_string(),
        cluster,
        format,
        delivery,
    )))
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_unset_variable_is_named_and_no_notifier_is_made() {
        let config = crate::config::NotifyConfig {
            url_env: Some("K3SA_TEST_WEBHOOK_NEVER_SET_7F3A".into()),
            ..Default::default()
        };
        let err = super::from_config(&config, "c").err().expect("an error");
        assert!(err.contains("K3SA_TEST_WEBHOOK_NEVER_SET_7F3A"), "{err}");
        let off = crate::config::NotifyConfig::default();
        assert!(matches!(super::from_config(&off, "c"), Ok(None)));
    }
}
