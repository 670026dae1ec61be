//! `[notify]`: where notifications go (src/runtime/notify/).

use super::{ConfigDuration, InvalidValue};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// The environment variable that holds the webhook URL (the URL is a
    /// secret, so it is never in the file). Unset: no notifications.
    pub url_env: Option<String>,
    /// `slack` (`{"text": …}`) or `json` (every field).
    pub format: String,
    /// Notices waiting at most while the webhook is slow or down; more
    /// are dropped and counted.
    pub queue: u32,
    /// Attempts per notice, with a doubling back-off from 1 s to 30 s.
    pub attempts: u32,
    /// Per attempt.
    pub timeout: ConfigDuration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            url_env: None,
            format: "slack".into(),
            queue: 100,
            attempts: 5,
            timeout: ConfigDuration::secs(5),
        }
    }
}

impl NotifyConfig {
    pub(super) fn validate(&self) -> Result<(), InvalidValue> {
        let bad = |key: &str, why: String| {
            Err(InvalidValue {
                key: key.to_string(),
                why,
            })
        };
        if let Some(name) = &self.url_env
            && (name.is_empty()
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || name.starts_with(|c: char| c.is_ascii_digit()))
        {
            return bad(
                "notify.url_env",
                // Not echoed: a URL pasted here by mistake is the secret.
                "must be the name of an environment variable (letters, digits, _); the webhook URL itself never goes in the file".into(),
            );
        }
        if !matches!(self.format.as_str(), "slack" | "json") {
            return bad(
                "notify.format",
                format!("must be \"slack\" or \"json\", got {:?}", self.format),
            );
        }
        if self.queue == 0 || self.queue > 10_000 {
            return bad(
                "notify.queue",
                format!("must be from 1 to 10000, got {}", self.queue),
            );
        }
        if self.attempts == 0 || self.attempts > 20 {
            return bad(
                "notify.attempts",
                format!("must be from 1 to 20, got {}", self.attempts),
            );
        }
        if self.timeout.get().is_zero() {
            return bad("notify.timeout", "must be greater than zero".into());
        }
        Ok(())
    }
}
