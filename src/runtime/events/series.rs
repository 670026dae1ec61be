//! Repeats into series, as client-go's events recorder does, and a limit
//! on the rate. A pod that waits an hour is told "max_workers reached"
//! every tick: that must be one event whose count grows, not 240 objects
//! in etcd. Pure: `now` is the tick's, an argument.
//!
//! One event per object, reason, action and note (the API server keeps a
//! note immutable, so a changed note is a new event). The first
//! occurrence creates it; later ones bump its `series` — the second at
//! once, then at most once per `BUMP_EVERY`, and what is left unwritten is
//! written by `due` once that time has passed (or by `expire`, as the
//! key is forgotten: a series that went quiet still ends on its true
//! count). A key quiet for `SERIES_GAP` is forgotten: its next occurrence
//! is a new event, as client-go's is after six minutes. Writes beyond the
//! token bucket are dropped and counted; a dropped create is forgotten,
//! so that the next occurrence tries again. A bump the server did not
//! take keeps its event: it is tried again a `BUMP_EVERY` later, never
//! replaced by a new event (a cluster that lets us create but not patch
//! would otherwise get a new object every other tick).

use crate::engine::events::Occurrence;
use crate::ports::events::{FIELD_LIMIT, fit};
use crate::ports::{ClusterEvent, EventObject, EventSeries, Timestamp};
use std::collections::HashMap;
use std::time::Duration;

pub const SERIES_GAP: Duration = Duration::from_secs(6 * 60);
/// client-go refreshes a series every 30 minutes; a count that moves every
/// five is fresh enough for `kubectl describe`, and 300 waiting pods cost
/// one PATCH a second, not five (K3s keeps its objects in SQLite).
pub const BUMP_EVERY: Duration = Duration::from_secs(5 * 60);
/// Writes in a burst (a flash sale's pending pods all at once)…
pub const BURST: u32 = 100;
/// …and sustained, per second.
pub const PER_SECOND: u32 = 10;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    regarding: EventObject,
    reason: &'static str,
    action: &'static str,
    note: String,
}

#[derive(Clone, Debug)]
struct Entry {
    namespace: String,
    name: String,
    count: u32,
    written: u32,
    last_seen: Timestamp,
    last_write: Timestamp,
    /// `written` before the bump in flight, restored if it fails.
    written_before: u32,
    /// The last bump failed: the next waits `BUMP_EVERY`, even the second.
    bump_failed: bool,
}

/// One call to make on the cluster port.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    Create(ClusterEvent),
    Bump {
        namespace: String,
        name: String,
        series: EventSeries,
    },
}

#[derive(Debug)]
pub struct Series {
    instance: String,
    entries: HashMap<Key, Entry>,
    tokens: f64,
    refilled: Option<Timestamp>,
    /// Dropped by the rate limit since the last `take_dropped`.
    dropped: u64,
    /// Added to the name's nanoseconds: two events of one object in one
    /// tick, or of two engines in one millisecond, never share a name.
    created: u64,
    salt: u64,
}

impl Series {
    /// `instance`: the engine's owner id (`reportingInstance`).
    pub fn new(instance: &str) -> Series {
        Series {
            instance: fit(instance, FIELD_LIMIT),
            entries: HashMap::new(),
            tokens: BURST as f64,
            refilled: None,
            dropped: 0,
            created: 0,
            salt: instance
                .bytes()
                .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
                % 1_000,
        }
    }

    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    fn refill(&mut self, now: Timestamp) {
        if let Some(last) = self.refilled {
            let secs = now.since(last).as_secs_f64();
            self.tokens = (self.tokens + secs * PER_SECOND as f64).min(BURST as f64);
        }
        self.refilled = Some(self.refilled.map_or(now, |l| l.max(now)));
    }

    fn take_token(&mut self) -> bool {
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.dropped += 1;
            false
        }
    }

    /// Forget the keys quiet for `SERIES_GAP`: their next occurrence is a
    /// new event. Once per batch, not per occurrence. Returns the bumps
    /// they still owe (a count not yet written), so that the event the
    /// server keeps shows how many times it happened.
    pub fn expire(&mut self, now: Timestamp) -> Vec<Write> {
        self.refill(now);
        let quiet: Vec<Key> = self
            .entries
            .iter()
            .filter(|(_, e)| now.since(e.last_seen) >= SERIES_GAP)
            .map(|(k, _)| k.clone())
            .collect();
        let mut owed = Vec::new();
        for key in quiet {
            if self.entries.get(&key).is_some_and(|e| e.written < e.count)
                && let Some(w) = self.bump(&key, now)
            {
                owed.push(w);
            }
            self.entries.remove(&key);
        }
        owed
    }

    /// The write this occurrence calls for, if any.
    pub fn occur(&mut self, o: Occurrence, now: Timestamp) -> Option<Write> {
        self.refill(now);
        let key = Key {
            regarding: o.regarding.clone(),
            reason: o.reason,
            action: o.action,
            note: o.note.clone(),
        };
        if let Some(e) = self.entries.get_mut(&key) {
            e.count = e.count.saturating_add(1);
            e.last_seen = now;
            let bump_due =
                (e.written < 2 && !e.bump_failed) || now.since(e.last_write) >= BUMP_EVERY;
            if !bump_due {
                return None;
            }
            return self.bump(&key, now);
        }
        if !self.take_token() {
            return None;
        }
        let namespace = o.regarding.event_namespace().to_string();
        // client-go's name: the object's, then the time in hex nanoseconds
        // (a DNS subdomain whatever the object's name is).
        self.created += 1;
        let nanos = now.as_millis().max(0) as u128 * 1_000_000
            + u128::from(self.salt * 1_000 + self.created % 1_000);
        let suffix = format!(".{nanos:x}");
        let stem = fit_name(&o.regarding.name, 253 - suffix.len());
        let name = format!("{stem}{suffix}");
        self.entries.insert(
            key,
            Entry {
                namespace: namespace.clone(),
                name: name.clone(),
                count: 1,
                written: 1,
                last_seen: now,
                last_write: now,
                written_before: 0,
                bump_failed: false,
            },
        );
        Some(Write::Create(ClusterEvent {
            name,
            regarding: o.regarding,
            reason: o.reason.to_string(),
            action: o.action.to_string(),
            note: o.note,
            event_type: o.event_type,
            at: now,
            instance: self.instance.clone(),
            series: None,
        }))
    }

    fn bump(&mut self, key: &Key, now: Timestamp) -> Option<Write> {
        if !self.take_token() {
            return None;
        }
        let e = self.entries.get_mut(key)?;
        e.written_before = e.written;
        e.written = e.count;
        e.last_write = now;
        e.bump_failed = false;
        Some(Write::Bump {
            namespace: e.namespace.clone(),
            name: e.name.clone(),
            series: EventSeries {
                count: e.count,
                last_observed: e.last_seen,
            },
        })
    }

    /// Bumps owed: counts not yet written whose last write is
    /// `BUMP_EVERY` old (a series that went quiet still shows its count).
    pub fn due(&mut self, now: Timestamp) -> Vec<Write> {
        self.refill(now);
        let keys: Vec<Key> = self
            .entries
            .iter()
            .filter(|(_, e)| e.written < e.count && now.since(e.last_write) >= BUMP_EVERY)
            .map(|(k, _)| k.clone())
            .collect();
        keys.iter().filter_map(|k| self.bump(k, now)).collect()
    }

    /// A bump was refused or unanswered: the count it carried is still
    /// owed, and tried again (by `due` or the next occurrence) once
    /// `BUMP_EVERY` has passed since this attempt. The event stays.
    pub fn bump_failed(&mut self, namespace: &str, name: &str) {
        if let Some(e) = self
            .entries
            .values_mut()
            .find(|e| e.namespace == namespace && e.name == name)
        {
            e.written = e.written_before;
            e.bump_failed = true;
        }
    }

    /// A write that did not reach the server: a create is forgotten (the
    /// next occurrence tries again), a bump stays owed (`bump_failed`).
    pub fn not_written(&mut self, write: &Write) {
        match write {
            Write::Create(e) => self.forget(e.namespace(), &e.name),
            Write::Bump {
                namespace, name, ..
            } => self.bump_failed(namespace, name),
        }
    }

    /// The server no longer has this event (its TTL ran out), or refused
    /// to create it: the next occurrence starts a new one.
    pub fn forget(&mut self, namespace: &str, name: &str) {
        self.entries
            .retain(|_, e| !(e.namespace == namespace && e.name == name));
    }

    pub fn tracked(&self) -> usize {
        self.entries.len()
    }
}

/// A DNS-subdomain stem: an object's name already is one; cut on a
/// character boundary all the same.
fn fit_name(name: &str, limit: usize) -> &str {
    if name.len() <= limit {
        return name;
    }
    let mut end = limit;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].trim_end_matches(['.', '-'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::{NOT_TRIGGER_SCALE_UP, Occurrence};
    use crate::ports::EventType;

    fn waiting(pod: &str, note: &str) -> Occurrence {
        Occurrence {
            regarding: EventObject::pod("shop", pod, &format!("uid-{pod}")),
            reason: NOT_TRIGGER_SCALE_UP,
            action: "ScaleUp",
            event_type: EventType::Normal,
            note: note.into(),
        }
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_millis(1_767_571_200_000 + secs * 1000)
    }

    #[test]
    fn an_hour_of_ticks_is_one_event_whose_count_grows_at_most_once_a_minute() {
        let mut s = Series::new("engine-a");
        let mut writes = Vec::new();
        let mut name = None;
        for tick in 0..240 {
            let now = t(tick * 15);
            if let Some(w) = s.occur(
                waiting(
                    "web-0",
                    "pod didn't trigger scale-up: max_workers (10) reached",
                ),
                now,
            ) {
                writes.push(w);
            }
            writes.extend(s.due(now));
        }
        let Write::Create(first) = &writes[0] else {
            panic!("the first write creates: {writes:?}")
        };
        name.get_or_insert(first.name.clone());
        assert!(first.name.starts_with("web-0."), "{}", first.name);
        assert_eq!(first.namespace(), "shop");
        assert_eq!(first.instance, "engine-a");
        // The rest bump that one event: the second occurrence at once,
        // then once a minute; the last bump carries the last count.
        assert!(
            writes[1..]
                .iter()
                .all(|w| matches!(w, Write::Bump { name: n, .. } if Some(n) == name.as_ref()))
        );
        assert!(writes.len() <= 2 + 12, "{} writes", writes.len());
        let Some(Write::Bump { series, .. }) = writes.last() else {
            panic!("ends with a bump")
        };
        assert!(series.count >= 240 - 20, "{series:?}");
        assert!(matches!(&writes[1], Write::Bump { series, .. } if series.count == 2));
    }

    #[test]
    fn a_changed_note_is_a_new_event_and_a_quiet_key_is_forgotten() {
        let mut s = Series::new("e");
        assert!(matches!(
            s.occur(waiting("p", "a"), t(0)),
            Some(Write::Create(_))
        ));
        assert!(matches!(
            s.occur(waiting("p", "b"), t(15)),
            Some(Write::Create(_))
        ));
        assert!(matches!(
            s.occur(waiting("p", "a"), t(30)),
            Some(Write::Bump { .. })
        ));
        // Seven minutes quiet: the next one is a new event, and the
        // quiet ones owe nothing (each count was written).
        assert_eq!(s.expire(t(30 + 420)), vec![]);
        assert!(matches!(
            s.occur(waiting("p", "a"), t(30 + 420)),
            Some(Write::Create(_))
        ));
        assert_eq!(s.tracked(), 1);
    }

    #[test]
    fn a_flash_sale_beyond_the_burst_is_dropped_and_counted_and_tried_again_later() {
        let mut s = Series::new("e");
        let creates = (0..300)
            .filter_map(|i| s.occur(waiting(&format!("p{i}"), "n"), t(0)))
            .count();
        assert_eq!(creates, BURST as usize);
        assert_eq!(s.take_dropped(), 200);
        // Ten seconds later the bucket holds 100 again: the dropped ones
        // are created on their next occurrence.
        let later = (100..300)
            .filter_map(|i| s.occur(waiting(&format!("p{i}"), "n"), t(10)))
            .filter(|w| matches!(w, Write::Create(_)))
            .count();
        assert_eq!(later, BURST as usize);
    }

    #[test]
    fn two_events_of_one_object_in_one_tick_or_of_two_engines_never_share_a_name() {
        let name = |w: Option<Write>| match w {
            Some(Write::Create(e)) => e.name,
            other => panic!("a create: {other:?}"),
        };
        let mut a = Series::new("engine-a");
        let first = name(a.occur(waiting("p", "one why"), t(0)));
        let second = name(a.occur(waiting("p", "another why"), t(0)));
        assert_ne!(first, second);
        let mut b = Series::new("engine-b");
        assert_ne!(first, name(b.occur(waiting("p", "one why"), t(0))));
    }

    /// A cluster whose RBAC lets us create events but not patch them: the
    /// refused bump keeps its event (tried again five minutes later, not
    /// at the next tick), never a new event every other tick.
    #[test]
    fn a_refused_bump_keeps_its_event_and_waits_before_trying_again() {
        let mut s = Series::new("e");
        let Some(Write::Create(e)) = s.occur(waiting("p", "n"), t(0)) else {
            panic!("create")
        };
        let Some(Write::Bump { name, .. }) = s.occur(waiting("p", "n"), t(15)) else {
            panic!("the second occurrence bumps")
        };
        assert_eq!(name, e.name);
        s.bump_failed(e.namespace(), &name);
        let mut writes = Vec::new();
        for tick in 2..=24 {
            writes.extend(s.occur(waiting("p", "n"), t(tick * 15)));
            writes.extend(s.due(t(tick * 15)));
        }
        // Nothing until five minutes after the refused bump (15 s + 300 s),
        // then one bump of the same event with the whole count.
        assert_eq!(writes.len(), 1, "{writes:?}");
        let Write::Bump { name, series, .. } = &writes[0] else {
            panic!("a bump: {writes:?}")
        };
        assert_eq!(name, &e.name);
        assert_eq!(series.count, 22, "{series:?}");
    }

    /// A series that went quiet before its next bump was due still ends on
    /// its true count: the bump is written as the key is forgotten.
    #[test]
    fn a_quiet_series_writes_its_last_count_when_it_is_forgotten() {
        let mut s = Series::new("e");
        for tick in 0..10 {
            s.occur(waiting("p", "n"), t(tick * 15));
        }
        // Created at 0, bumped to 2 at 15 s; 3..10 unwritten, last seen at
        // 135 s; quiet for six minutes from there.
        assert!(s.due(t(200)).is_empty(), "not five minutes yet");
        let owed = s.expire(t(135 + 360));
        let [Write::Bump { series, .. }] = owed.as_slice() else {
            panic!("one bump owed: {owed:?}")
        };
        assert_eq!(series.count, 10);
        assert_eq!(s.tracked(), 0);
    }

    #[test]
    fn a_forgotten_event_is_created_again() {
        let mut s = Series::new("e");
        let Some(Write::Create(e)) = s.occur(waiting("p", "n"), t(0)) else {
            panic!("create")
        };
        s.forget(e.namespace(), &e.name);
        assert!(matches!(
            s.occur(waiting("p", "n"), t(15)),
            Some(Write::Create(_))
        ));
    }

    #[test]
    fn a_long_object_name_still_makes_a_name_the_server_takes() {
        let mut s = Series::new("e");
        let long = "a".repeat(253);
        let Some(Write::Create(e)) = s.occur(waiting(&long, "n"), t(0)) else {
            panic!("create")
        };
        assert!(e.name.len() <= 253, "{}", e.name.len());
    }
}
