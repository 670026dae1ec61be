//! Taking, keeping and giving back the lock (DESIGN §4), on top of the
//! engine's lease arithmetic.

use super::ids::IdSource;
use crate::engine::{HeldLease, LeaseRules};
use crate::ports::{AcquireRequest, Clock, LockRecord, PortError, StateStore};
use std::sync::Arc;
use tracing::{info, warn};

pub struct LockClient {
    state: Arc<dyn StateStore>,
    clock: Arc<dyn Clock>,
    rules: LeaseRules,
    owner: String,
    ids: Arc<IdSource>,
}

#[derive(Debug)]
pub enum Acquired {
    Held(HeldLease),
    /// Someone else holds it (as last read, when known).
    Busy(Option<LockRecord>),
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
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub async fn acquire(&self) -> Result<Acquired, PortError> {
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

    pub fn may_act(&self, held: &HeldLease) -> bool {
        held.may_act(self.clock.mono())
    }
}
