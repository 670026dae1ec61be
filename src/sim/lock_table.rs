//! The state table with DynamoDB's conditional-write semantics: the
//! conditions are exactly those the real adapter sends (docs/architecture.md §4), so a
//! protocol bug shows up here first.

use crate::ports::{
    AcquireRequest, BreakGlass, Lease, LockRecord, OpRecord, PortError, PortResult, StateSnapshot,
    Timestamp,
};
use std::time::Duration;

#[derive(Debug, Default, Clone)]
pub struct LockTable {
    pub lock: Option<LockRecord>,
    pub record: OpRecord,
    /// Break-glass audit trail: who, why, when.
    pub audit: Vec<String>,
}

impl LockTable {
    pub fn snapshot(&self) -> StateSnapshot {
        StateSnapshot {
            lock: self.lock.clone(),
            record: self.record.clone(),
        }
    }

    /// `attribute_not_exists(pk) OR scalingInProgress = false OR lockUntilEpoch < :now_minus_skew`
    /// then SET owner, leaseId, until; ADD fence 1.
    pub fn acquire(&mut self, req: &AcquireRequest) -> Option<LockRecord> {
        let free = match &self.lock {
            None => true,
            Some(l) => !l.in_progress || l.until < req.now.minus(req.skew_margin),
        };
        if !free {
            return None;
        }
        let fence = self.lock.as_ref().map_or(0, |l| l.fence) + 1;
        let lock = LockRecord {
            in_progress: true,
            owner: req.owner.clone(),
            lease_id: req.lease_id.clone(),
            fence,
            until: req.now.plus(req.lease),
            lease_ms: req.lease.as_millis() as u64,
        };
        self.lock = Some(lock.clone());
        Some(lock)
    }

    fn holds(&self, lease: &Lease) -> bool {
        self.lock.as_ref().is_some_and(|l| {
            l.in_progress
                && l.owner == lease.owner
                && l.lease_id == lease.lease_id
                && l.fence == lease.fence
        })
    }

    fn lost(&self, lease: &Lease) -> PortError {
        let holder = match &self.lock {
            Some(l) if l.in_progress => format!("held by {} (fence {})", l.owner, l.fence),
            Some(l) => format!("free (fence {})", l.fence),
            None => "absent".into(),
        };
        PortError::PreconditionFailed(format!(
            "lock lost: lease {} (fence {}) no longer holds it; lock is {holder}",
            lease.lease_id, lease.fence
        ))
    }

    pub fn renew(
        &mut self,
        lease: &Lease,
        now: Timestamp,
        duration: Duration,
    ) -> PortResult<Timestamp> {
        if !self.holds(lease) {
            return Err(self.lost(lease));
        }
        let until = now.plus(duration);
        if let Some(l) = self.lock.as_mut() {
            l.until = until;
        }
        Ok(until)
    }

    pub fn release(&mut self, lease: &Lease) -> PortResult<()> {
        if !self.holds(lease) {
            return Err(self.lost(lease));
        }
        if let Some(l) = self.lock.as_mut() {
            l.in_progress = false;
        }
        Ok(())
    }

    /// TransactWriteItems: ConditionCheck on the lock + Update of the op item
    /// conditioned on its revision and phase.
    pub fn write_op(
        &mut self,
        lease: &Lease,
        previous: &OpRecord,
        next: &OpRecord,
    ) -> PortResult<()> {
        if !self.holds(lease) {
            return Err(self.lost(lease));
        }
        if self.record.rev != previous.rev || self.record.phase() != previous.phase() {
            return Err(PortError::PreconditionFailed(format!(
                "operation record moved: expected rev {} ({:?}), found rev {} ({:?})",
                previous.rev,
                previous.phase(),
                self.record.rev,
                self.record.phase()
            )));
        }
        self.record = next.clone();
        Ok(())
    }

    pub fn force_unlock(&mut self, audit: &BreakGlass) -> LockRecord {
        let previous = self.lock.clone();
        let fence = previous.as_ref().map_or(0, |l| l.fence) + 1;
        let lock = LockRecord {
            in_progress: false,
            owner: format!("break-glass:{}", audit.who),
            lease_id: String::new(),
            fence,
            until: audit.now,
            lease_ms: 0,
        };
        self.audit.push(format!(
            "{} break-glass by {}: {} (previous holder {})",
            audit.now,
            audit.who,
            audit.reason,
            previous.map_or("none".into(), |l| l.owner)
        ));
        self.lock = Some(lock.clone());
        lock
    }
}
