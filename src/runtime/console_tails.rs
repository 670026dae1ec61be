//! The console tail of each never-joined instance (a reconciliation
//! finding): fetched from the cloud, cached for a minute per instance so a
//! 15 s tick does not call GetConsoleOutput four times a minute each.

use crate::engine::reconcile::{Finding, console_tail};
use crate::ports::{CloudApi, Timestamp};
use std::collections::BTreeMap;
use std::time::Duration;

/// Lines of console output shown with a finding: enough for the last error.
pub const TAIL_LINES: usize = 6;
const REFRESH: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct ConsoleTails {
    cache: BTreeMap<String, (Timestamp, Option<String>)>,
}

impl ConsoleTails {
    /// Fill `console_tail` of every never-joined finding. A failed fetch
    /// leaves it empty: the tail is a hint, never a reason to stop a tick.
    pub async fn fill(&mut self, cloud: &dyn CloudApi, findings: &mut [Finding], now: Timestamp) {
        let mut seen = Vec::new();
        for f in findings.iter_mut() {
            let Finding::NeverJoined {
                instance,
                console_tail: tail,
                ..
            } = f
            else {
                continue;
            };
            seen.push(instance.clone());
            let fresh = self
                .cache
                .get(instance.as_str())
                .is_some_and(|(at, _)| now.since(*at) < REFRESH);
            if !fresh {
                let text = match cloud.console_output(instance).await {
                    Ok(text) => text.and_then(|t| console_tail(&t, TAIL_LINES)),
                    Err(e) => {
                        tracing::debug!(target: "runtime", "console output of {instance}: {e}");
                        None
                    }
                };
                self.cache.insert(instance.clone(), (now, text));
            }
            *tail = self
                .cache
                .get(instance.as_str())
                .and_then(|(_, t)| t.clone());
        }
        // Forget instances that are no longer findings.
        self.cache.retain(|id, _| seen.contains(id));
    }
}
