//! The delivery task: one notice at a time, in order, each retried with a
//! doubling back-off until it is accepted, refused for good, or out of
//! attempts.

use super::payload::{Format, body};
use super::{Notice, NotifyStats};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

/// How notices are delivered.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// Notices waiting at most; more are dropped.
    pub queue: usize,
    /// Attempts per notice, the first included.
    pub attempts: u32,
    /// Per attempt: a receiver that hangs must not hold the queue for ever.
    pub timeout: Duration,
    /// The wait after the first failed attempt, doubling up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            queue: 100,
            attempts: 5,
            timeout: Duration::from_secs(5),
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// What one attempt came to.
enum Outcome {
    Accepted,
    /// Worth another attempt: no answer, a timeout, 429 or 5xx.
    Retry(String),
    /// Refused in a way no retry changes (any other 4xx).
    Refused(String),
}

pub(super) async fn run(
    mut rx: mpsc::Receiver<Notice>,
    url: String,
    format: Format,
    delivery: Delivery,
    stats: Arc<NotifyStats>,
) {
    let http = match reqwest::Client::builder()
        .timeout(delivery.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(h) => h,
        Err(e) => {
            let why = format!("cannot build an HTTP client: {}", e.without_url());
            tracing::error!(target: "notify", "no notifications will be sent: {why}");
            stats.set_error(why);
            return;
        }
    };
    while let Some(notice) = rx.recv().await {
        deliver_one(&http, &url, format, &delivery, &stats, &notice).await;
        stats.pending.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn deliver_one(
    http: &reqwest::Client,
    url: &str,
    format: Format,
    delivery: &Delivery,
    stats: &NotifyStats,
    notice: &Notice,
) {
    let payload = body(format, notice);
    let mut backoff = delivery.first_backoff;
    for attempt in 1..=delivery.attempts.max(1) {
        match post(http, url, &payload).await {
            Outcome::Accepted => {
                stats.sent.fetch_add(1, Ordering::Relaxed);
                break;
            }
            Outcome::Refused(why) => {
                tracing::warn!(target: "notify", kind = notice.kind.name(), "webhook refused a notice: {why}");
                stats.set_error(why);
                stats.failed.fetch_add(1, Ordering::Relaxed);
                break;
            }
            Outcome::Retry(why) if attempt == delivery.attempts.max(1) => {
                tracing::warn!(target: "notify", kind = notice.kind.name(), attempts = attempt, "notice given up: {why}");
                stats.set_error(why);
                stats.failed.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Retry(why) => {
                tracing::debug!(target: "notify", attempt, "webhook attempt failed: {why}");
                stats.set_error(why);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(delivery.max_backoff);
            }
        }
    }
}

async fn post(http: &reqwest::Client, url: &str, payload: &serde_json::Value) -> Outcome {
    // `without_url`: the URL is the secret, and reqwest's errors name it.
    match http.post(url).json(payload).send().await {
        Err(e) => Outcome::Retry(e.without_url().to_string()),
        Ok(answer) => {
            let status = answer.status();
            if status.is_success() {
                Outcome::Accepted
            } else if status.as_u16() == 429 || status.is_server_error() {
                Outcome::Retry(format!("the webhook answered {status}"))
            } else {
                Outcome::Refused(format!("the webhook answered {status}"))
            }
        }
    }
}
