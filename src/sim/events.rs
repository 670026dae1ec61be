//! The simulated API server's Events (`events.k8s.io/v1`), kept as the
//! real one keeps them: one object per name (a second create of a name is
//! a conflict), only `series` changes after that, and an event expires an
//! hour after it was last observed (the API server's default `--event-ttl`),
//! after which a bump finds nothing. The checks of the fields themselves
//! are the façade's, on the JSON the kube adapter sends (`facade/events.rs`).

use crate::ports::{ClusterEvent, EventSeries, PortError, PortResult, Timestamp};
use std::collections::BTreeMap;
use std::time::Duration;

pub const EVENT_TTL: Duration = Duration::from_secs(3600);
/// More than any run keeps within a TTL; a bound all the same.
const MAX_EVENTS: usize = 20_000;

#[derive(Debug, Default)]
pub struct EventStore {
    by_name: BTreeMap<(String, String), ClusterEvent>,
    /// Creates and bumps accepted, for tests and `/debug`.
    pub writes: u64,
    /// A cluster whose RBAC does not grant `create` / `patch` on
    /// `events.events.k8s.io`: those calls are refused with a 403.
    pub forbid_create: bool,
    pub forbid_patch: bool,
    /// Calls refused that way.
    pub forbidden: u64,
}

fn forbidden(verb: &str) -> PortError {
    PortError::Refused(format!(
        "{verb} an event: 403 events.events.k8s.io is forbidden: User \"system:serviceaccount:kube-system:k3s-autoscaler\" cannot {verb} resource \"events\" in API group \"events.k8s.io\" (Forbidden)"
    ))
}

fn last_observed(e: &ClusterEvent) -> Timestamp {
    e.series.map_or(e.at, |s| s.last_observed.max(e.at))
}

impl EventStore {
    fn expire(&mut self, now: Timestamp) {
        self.by_name
            .retain(|_, e| now.since(last_observed(e)) < EVENT_TTL);
        while self.by_name.len() > MAX_EVENTS {
            let oldest = self
                .by_name
                .iter()
                .min_by_key(|(_, e)| last_observed(e))
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.by_name.remove(&k),
                None => break,
            };
        }
    }

    pub fn create(&mut self, event: ClusterEvent, now: Timestamp) -> PortResult<()> {
        if self.forbid_create {
            self.forbidden += 1;
            return Err(forbidden("create"));
        }
        self.expire(now);
        let key = (event.namespace().to_string(), event.name.clone());
        if self.by_name.contains_key(&key) {
            return Err(PortError::PreconditionFailed(format!(
                "events.events.k8s.io \"{}\" already exists",
                event.name
            )));
        }
        self.by_name.insert(key, event);
        self.writes += 1;
        Ok(())
    }

    /// `Ok(false)`: no such event (never created, or expired).
    pub fn bump(
        &mut self,
        namespace: &str,
        name: &str,
        series: EventSeries,
        now: Timestamp,
    ) -> PortResult<bool> {
        if self.forbid_patch {
            self.forbidden += 1;
            return Err(forbidden("patch"));
        }
        self.expire(now);
        if series.count < 2 {
            return Err(PortError::Invalid(format!(
                "series.count: Invalid value: \"\": should be at least 2 (got {})",
                series.count
            )));
        }
        match self
            .by_name
            .get_mut(&(namespace.to_string(), name.to_string()))
        {
            Some(e) => {
                e.series = Some(series);
                self.writes += 1;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<&ClusterEvent> {
        self.by_name.get(&(namespace.to_string(), name.to_string()))
    }

    /// Every event held, in namespace then name order (`ns = None`: all).
    pub fn list(&self, namespace: Option<&str>) -> Vec<&ClusterEvent> {
        self.by_name
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|want| want == ns))
            .map(|(_, e)| e)
            .collect()
    }

    /// Events with this reason about this object's name, for tests.
    pub fn about(&self, name: &str, reason: &str) -> Vec<&ClusterEvent> {
        self.by_name
            .values()
            .filter(|e| e.regarding.name == name && e.reason == reason)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{EventObject, EventType};

    fn event(name: &str, at: Timestamp) -> ClusterEvent {
        ClusterEvent {
            name: name.into(),
            regarding: EventObject::node("w1"),
            reason: "ScaleDown".into(),
            action: "ScaleDown".into(),
            note: "n".into(),
            event_type: EventType::Normal,
            at,
            instance: "e".into(),
            series: None,
        }
    }

    #[test]
    fn a_name_is_created_once_and_an_expired_event_cannot_be_bumped() {
        let t0 = Timestamp::from_millis(1_000_000_000);
        let mut store = EventStore::default();
        store.create(event("w1.1", t0), t0).expect("created");
        assert!(
            store.create(event("w1.1", t0), t0).is_err(),
            "a second create conflicts"
        );
        let series = |count, at| EventSeries {
            count,
            last_observed: at,
        };
        assert!(
            store.bump("default", "w1.1", series(1, t0), t0).is_err(),
            "count below 2"
        );
        assert_eq!(
            store.bump("default", "w1.1", series(2, t0), t0).ok(),
            Some(true)
        );
        let late = t0.plus(EVENT_TTL).plus(Duration::from_secs(1));
        assert_eq!(
            store.bump("default", "w1.1", series(3, late), late).ok(),
            Some(false)
        );
        assert!(store.is_empty());
    }
}
