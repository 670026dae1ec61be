//! Taking, keeping and giving back the lock (docs/architecture.md §4), on top of the
//! engine's lease arithmetic.

use super::ids::IdSource;
use crate::engine::{HeldLease, LeaseRules};
use crate::ports::{AcquireRequest, Clock, LockRecord, MonoTime, PortError, StateStore};
use std::sync::Arc;
use tracing::{info, warn};

pub struct LockClient {
    state: Arc<dyn StateStore>,
    clock: Arc<dyn Clock>,
    rules: LeaseRules,
    owner: String,
    ids: Arc<IdSource>,
    /// When the clock was last compared with the store's, and whether it
    /// was too far off.
    clock_check: std::sync::Mutex<Option<(MonoTime, Option<String>)>>,
    /// Off for a client that only ever writes a pause (see `for_pause`).
    skew_checked: bool,
}

/// How often our clock is compared with the store's.
const CLOCK_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

#[derive(Debug)]
pub enum Acquired {
    Held(HeldLease),
    /// Someone else holds it (as last read, when known).
    Busy(Option<LockRecord>),
    /// Not tried: our clock is further from the store's than the skew
    /// margin allows (the reason says by how much).
    ClockSkew(String),
}

impl LockClient {
    pub fn new(
        state: Arc<dyn StateStore>,
        clock: Arc<dyn Clock>,
        rules: LeaseRules,
        owner: String,
        ids: Arc<IdSource>,
    ) -> Self {
        LockClient {
            state,
            clock,
            rules,
            owner,
            ids,
            clock_check: std::sync::Mutex::new(None),
            skew_checked: true,
        }
    }

    /// A client for `pause`/`resume`: what an operator reaches for when
    /// something is wrong, so it does not refuse on a skewed clock. It
    /// writes one record and starts nothing; its lease is released at once.
    pub fn for_pause(mut self) -> Self {
        self.skew_checked = false;
        self
    }

    /// Compare our clock with the store's (at start, then at most hourly):
    /// the refusal when it is off by more than the skew margin. A check
    /// that cannot be made is tried again at the next acquire.
    pub async fn check_clock(&self) -> Option<String> {
        let now = self.clock.mono();
        let last = self
            .clock_check
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some((at, verdict)) = &last
            && now.since(*at) < CLOCK_CHECK_EVERY
        {
            return verdict.clone();
        }
        match self.state.clock_sample(self.clock.as_ref()).await {
            Ok(sample) => {
                if sample.is_none() {
                    // Not a refusal (a proxy may strip the header), but
                    // never silent: the margin is not enforced meanwhile.
                    warn!(target: "lock", "the state store's answer carried no Date header: the clock cannot be compared with it, so lock.skew_margin is not checked (tried again in an hour)");
                }
                let verdict = sample
                    .and_then(|s| crate::engine::lock::skew_refusal(&s, self.rules.skew_margin));
                match &verdict {
                    Some(why) => warn!(target: "lock", "{why}"),
                    None if last.as_ref().is_some_and(|(_, v)| v.is_some()) => {
                        info!(target: "lock", "clock skew back within lock.skew_margin")
                    }
                    None => {}
                }
                *self.clock_check.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((now, verdict.clone()));
                verdict
            }
            Err(e) => {
                warn!(target: "lock", "could not compare the clock with the state store's ({e}); trying again at the next acquire");
                last.and_then(|(_, v)| v)
            }
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub async fn acquire(&self) -> Result<Acquired, PortError> {
        if self.skew_checked
            && let Some(why) = self.check_clock().await
        {
            return Ok(Acquired::ClockSkew(why));
        }
        let lease_id = self.ids.uuid();
        // Measured *before* the request: the deadline can only be early.
        let sent = self.clock.mono();
        let request = AcquireRequest {
            owner: self.owner.clone(),
            lease_id: lease_id.clone(),
            now: self.clock.now(),
            lease: self.rules.lease,
            skew_margin: self.rules.skew_margin,
        };
        let unknown = match self.state.acquire(&request).await {
            Ok(Some(lock)) => {
                return Ok(Acquired::Held(HeldLease::granted(&lock, sent, &self.rules)));
            }
            // Refused: usually someone else holds it, but it can also be our
            // own earlier attempt that applied before its response was lost.
            Ok(None) => None,
            Err(PortError::OutcomeUnknown(why)) => {
                warn!(target: "lock", "acquire outcome unknown ({why}); reading back");
                Some(why)
            }
            Err(e) => return Err(e),
        };
        // The write may have applied: a consistent read tells.
        let lock = match self.state.read().await {
            Ok(snapshot) => snapshot.lock,
            Err(e) if unknown.is_some() => return Err(e),
            Err(_) => None,
        };
        match lock {
            Some(l) if l.in_progress && l.lease_id == lease_id && l.owner == self.owner => {
                info!(target: "lock", fence = l.fence, "acquire had applied; holding the lock");
                Ok(Acquired::Held(HeldLease::granted(&l, sent, &self.rules)))
            }
            other => Ok(Acquired::Busy(other)),
        }
    }

    /// Renew if due. An unknown outcome keeps the old (earlier) deadline:
    /// the safe side.
    pub async fn keep(&self, held: &mut HeldLease) -> Result<(), PortError> {
        let sent = self.clock.mono();
        if !held.renew_due(sent, &self.rules) {
            return Ok(());
        }
        let now = self.clock.now();
        match self.state.renew(&held.lease, now, self.rules.lease).await {
            Ok(()) => {
                held.renewed(sent, now.plus(self.rules.lease), &self.rules);
                Ok(())
            }
            Err(PortError::OutcomeUnknown(why)) => {
                warn!(target: "lock", "renew outcome unknown ({why}); keeping the earlier deadline");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    pub async fn release(&self, held: &HeldLease) {
        match self.state.release(&held.lease).await {
            Ok(()) => {}
            Err(e) => {
                warn!(target: "lock", fence = held.lease.fence, "release failed ({e}); the lease will expire")
            }
        }
    }

    /// Renew now, due or not: right before a destructive call, so that it
    /// rests on a lease the store confirmed a moment ago (a host that was
    /// suspended, or lost the lock to a break-glass, finds out here).
    /// An unknown outcome counts as a refusal: nothing destructive on it.
    pub async fn confirm(&self, held: &mut HeldLease) -> Result<(), PortError> {
        let sent = self.clock.mono();
        let now = self.clock.now();
        self.state.renew(&held.lease, now, self.rules.lease).await?;
        held.renewed(sent, now.plus(self.rules.lease), &self.rules);
        Ok(())
    }

    pub fn may_act(&self, held: &HeldLease) -> bool {
        held.may_act(self.clock.mono())
    }
}
