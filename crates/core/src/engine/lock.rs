//! Lease rules of docs/architecture.md §4, as arithmetic on the monotonic clock.
//!
//! The holder measures its own deadline from just *before* it sent the
//! acquire (or renew) request, minus the skew margin: whatever the request's
//! latency, the store's expiry is later than our deadline, so we stop
//! acting before anyone else may start.

use super::settings::LeaseRules;
use crate::ports::{Lease, LockRecord, MonoTime, Timestamp};
use std::time::Duration;

/// The longest one side-effect call can take: the adapters' per-call
/// ceilings (EC2 10 s; Kubernetes 5 s to connect + 15 s to read). A side
/// effect (launch, cordon, evict, terminate) cannot be fenced by the store,
/// so one sent inside the lease must also *land* inside it: it starts only
/// if it would end before the deadline even at this length. Both adapters
/// assert at compile time that their timeouts fit under it.
pub const EFFECT_CALL_CEILING: Duration = Duration::from_secs(20);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldLease {
    pub lease: Lease,
    /// No side effect may land at or after this instant.
    pub deadline: MonoTime,
    /// When the last successful acquire/renew request was sent.
    pub refreshed_at: MonoTime,
    /// The expiry written to the store (wall clock), for display.
    pub until: Timestamp,
}

impl HeldLease {
    /// The lease that was just granted by a request sent at `sent`.
    pub fn granted(lock: &LockRecord, sent: MonoTime, rules: &LeaseRules) -> Self {
        HeldLease {
            lease: Lease {
                owner: lock.owner.clone(),
                lease_id: lock.lease_id.clone(),
                fence: lock.fence,
            },
            deadline: deadline_after(sent, rules),
            refreshed_at: sent,
            until: lock.until,
        }
    }

    /// After a renew request sent at `sent` succeeded.
    pub fn renewed(&mut self, sent: MonoTime, until: Timestamp, rules: &LeaseRules) {
        self.deadline = deadline_after(sent, rules);
        self.refreshed_at = sent;
        self.until = until;
    }

    /// A side effect started now ends before the deadline, however slow.
    pub fn may_act(&self, now: MonoTime) -> bool {
        now.plus(EFFECT_CALL_CEILING) < self.deadline
    }

    /// Renew every lease/3 so that one failed renew still leaves time to
    /// stop cleanly before the deadline, and whenever too little is left
    /// for a side effect (slow reads can eat a third of a lease).
    pub fn renew_due(&self, now: MonoTime, rules: &LeaseRules) -> bool {
        now >= self.refreshed_at.plus(rules.lease / 3) || !self.may_act(now)
    }
}

pub fn deadline_after(sent: MonoTime, rules: &LeaseRules) -> MonoTime {
    sent.plus(rules.lease).minus(rules.skew_margin)
}

/// Why the lock must not be taken with this clock: the store's clock and
/// ours differ by more than the skew margin (beyond the reading's own
/// uncertainty), so a lease end we write or read would mean another time
/// to every other engine. `None`: within the margin.
pub fn skew_refusal(sample: &crate::ports::ClockSample, margin: Duration) -> Option<String> {
    let (low, high) = sample.skew_bounds();
    let margin_ms = i64::try_from(margin.as_millis()).unwrap_or(i64::MAX);
    let (direction, by) = if low > margin_ms {
        ("behind", low)
    } else if high < -margin_ms {
        ("ahead of", -high)
    } else {
        return None;
    };
    Some(format!(
        "clock skew: this host's clock is at least {} {direction} the state store's, more than lock.skew_margin ({}); not taking the lock until it is corrected (NTP?)",
        crate::ports::format_duration(Duration::from_millis(by as u64)),
        crate::ports::format_duration(margin)
    ))
}

/// `host:pid:mode:uuid`: unique per process run, readable in `status`.
pub fn owner_id(host: &str, pid: u32, mode: &str, unique: &str) -> String {
    format!("{host}:{pid}:{mode}:{unique}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> LeaseRules {
        LeaseRules {
            lease: Duration::from_secs(60),
            skew_margin: Duration::from_secs(5),
        }
    }

    fn lock() -> LockRecord {
        LockRecord {
            in_progress: true,
            owner: "a".into(),
            lease_id: "l".into(),
            fence: 3,
            until: Timestamp(60_000),
            lease_ms: 60_000,
        }
    }

    #[test]
    fn deadline_is_measured_from_before_the_request_minus_margin() {
        let held = HeldLease::granted(&lock(), MonoTime(1_000), &rules());
        assert_eq!(held.deadline, MonoTime(56_000));
        // A side effect must end before the deadline, even a slow one.
        assert!(held.may_act(MonoTime(35_999)));
        assert!(!held.may_act(MonoTime(36_000)));
        assert_eq!(held.lease.fence, 3);
    }

    #[test]
    fn renew_is_due_every_third_of_the_lease() {
        let mut held = HeldLease::granted(&lock(), MonoTime(0), &rules());
        assert!(!held.renew_due(MonoTime(19_999), &rules()));
        assert!(held.renew_due(MonoTime(20_000), &rules()));
        held.renewed(MonoTime(20_000), Timestamp(80_000), &rules());
        assert_eq!(held.deadline, MonoTime(75_000));
        assert!(!held.renew_due(MonoTime(30_000), &rules()));
    }

    #[test]
    fn skew_beyond_the_margin_refuses_the_lock_either_way() {
        use crate::ports::ClockSample;
        let margin = Duration::from_secs(5);
        let sample = |sent: i64, received: i64, server: i64| ClockSample {
            sent: Timestamp(sent),
            received: Timestamp(received),
            server: Timestamp(server),
        };
        // Within the margin, allowing for the second-resolution Date.
        assert_eq!(skew_refusal(&sample(10_000, 10_300, 14_000), margin), None);
        assert_eq!(skew_refusal(&sample(10_000, 10_300, 5_000), margin), None);
        // Our clock is 20 s behind the store's.
        let why = skew_refusal(&sample(10_000, 10_300, 30_000), margin).unwrap();
        assert!(why.contains("19s behind"), "{why}");
        // 20 s ahead.
        let why = skew_refusal(&sample(30_000, 30_300, 10_000), margin).unwrap();
        assert!(why.contains("ahead of"), "{why}");
        // A slow round trip widens the uncertainty instead of raising an alarm.
        assert_eq!(skew_refusal(&sample(10_000, 25_000, 20_000), margin), None);
    }

    #[test]
    fn renew_is_due_when_too_little_is_left_for_a_side_effect() {
        let mut held = HeldLease::granted(&lock(), MonoTime(0), &rules());
        // Granted at 0: deadline 55 s. Pretend the last refresh was recent.
        held.refreshed_at = MonoTime(30_000);
        assert!(!held.renew_due(MonoTime(34_999), &rules()));
        assert!(held.renew_due(MonoTime(35_000), &rules()));
    }
}
