//! Deciding again on data read after taking the lock: what the executor
//! starts is what fresh data calls for, never what the tick's (possibly
//! cached) observation said.

use super::{Executor, StartRequest};
use crate::engine::operation::Intent;
use crate::engine::{decide, intent_of, validate_request};
use crate::ports::{OpRecord, Origin, Timestamp};
use crate::runtime::observe::observe_fresh;

impl Executor {
    /// Decide again, on data read after taking the lock; with the intent,
    /// when the oldest pod a scale-up answers began to wait, as this fresh
    /// data shows it (the latency's start).
    pub(super) async fn fresh_intent(
        &self,
        record: &OpRecord,
        start: StartRequest,
    ) -> Result<(Intent, Origin, Vec<String>, Option<Timestamp>), String> {
        let now = self.ports.clock.now();
        let obs = observe_fresh(&self.ports, now).await;
        let pending_since = crate::engine::latency::scale_up_wait_began(&self.settings, &obs);
        match start {
            StartRequest::Engine { mut memory } => {
                let decision = decide(&self.settings, &mut memory, &obs, record, now);
                match intent_of(&decision.action) {
                    Some(intent) => Ok((
                        intent,
                        Origin::Engine,
                        decision.reasons.into_iter().map(|r| r.text).collect(),
                        pending_since,
                    )),
                    None => Err(format!(
                        "fresh data no longer calls for it: {}",
                        decision.summary()
                    )),
                }
            }
            StartRequest::Operator(request) => {
                let intent =
                    validate_request(&self.settings, &obs, record, &request).map_err(|r| r.0)?;
                let reasons = vec![format!("requested by the operator: {}", intent.label())];
                Ok((intent, Origin::Operator, reasons, pending_since))
            }
        }
    }
}
