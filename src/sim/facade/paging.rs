//! `limit` / `continue` paging, as kube-apiserver pages a LIST.
//!
//! * Items come in key order (`namespace/name`), and a page may hold
//!   *fewer* items than the `limit` asked for: this façade always answers
//!   short pages, so a client that reads only the first page is caught.
//! * Every page of one list is read from **one snapshot**: the server
//!   serves continuations at the resourceVersion of the first page, so an
//!   object created or deleted meanwhile neither appears nor vanishes
//!   halfway through.
//! * A continuation whose snapshot is gone (etcd compacted it, five
//!   minutes by default) is `410 Gone`, reason `Expired`: the client must
//!   start the list again. `expire_next` makes the next continuations
//!   meet that, so a test can show what a client does then.

use crate::ports::Timestamp;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

/// The most items one page holds here, whatever the limit asked.
pub const SHORT_PAGE: usize = 3;

/// How long a list's snapshot can be continued: kube-apiserver's default
/// etcd compaction interval.
pub const CONTINUE_TTL: Duration = Duration::from_secs(5 * 60);

/// Snapshots kept at once; the oldest goes first, as compaction would
/// take it (bounds the façade's memory under a client that never finishes).
const MAX_SNAPSHOTS: usize = 64;

const TOKEN_PREFIX: &str = "k3s-sim-continue:";

/// What the API server says of a continue token too old to serve.
pub const EXPIRED_MESSAGE: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// One page of a list, or why there is none.
pub enum PageAnswer {
    Page {
        items: Vec<Value>,
        continue_token: Option<String>,
        /// The list's `resourceVersion`: its first page's, for every page.
        version: u64,
    },
    /// 400, with the server's message.
    BadRequest(String),
    /// 410 `Expired`: the snapshot this token continues is gone.
    Expired,
}

struct Snapshot {
    taken: Timestamp,
    version: u64,
    /// Every item of the list, in key order; shared, so a continuation
    /// copies out only its own page (at 150 000 pods a copy of the rest
    /// per page was gigabytes a list).
    items: std::sync::Arc<Vec<Value>>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    snapshots: BTreeMap<u64, Snapshot>,
    /// Continuations still to be answered `410`, whatever their age.
    expire_next: u32,
    /// `410`s answered so far.
    expired: u64,
    /// The most items a page holds; `0`: `SHORT_PAGE`.
    page_cap: usize,
}

#[derive(Default)]
pub struct Pager {
    state: Mutex<State>,
}

/// The key an item is stored under: `namespace/name`, or `name` for
/// cluster-scoped objects. Lists are served in this order.
pub fn key(item: &Value) -> String {
    let name = item
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    match item.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

fn limit(q: &HashMap<String, String>) -> Result<Option<usize>, String> {
    match q.get("limit").filter(|l| !l.is_empty()) {
        None => Ok(None),
        Some(l) => match l.parse::<i64>() {
            Ok(n) if n > 0 => Ok(Some(n as usize)),
            // The server treats 0 (and below) as "no limit".
            Ok(_) => Ok(None),
            Err(_) => Err(format!("invalid limit {l:?}: not an integer")),
        },
    }
}

impl Pager {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next `n` continuations are answered `410 Expired` (a test's
    /// stand-in for a compaction between two pages).
    pub fn expire_next(&self, n: u32) {
        self.state().expire_next = n;
    }

    /// Pages of up to `n` items (as many as the limit asks, up to `n`)
    /// instead of `SHORT_PAGE`: for measuring a large cluster, whose
    /// lists would otherwise be thousands of pages.
    pub fn set_page_cap(&self, n: usize) {
        self.state().page_cap = n.max(1);
    }

    /// How many `410 Expired` answers were given.
    pub fn expired_answers(&self) -> u64 {
        self.state().expired
    }

    /// The page the query asks for. `current` lists the objects now (in any
    /// order) and their version; it is called only for a list's first
    /// page, since a continuation is served from the first page's snapshot.
    pub fn page(
        &self,
        q: &HashMap<String, String>,
        now: Timestamp,
        current: impl FnOnce() -> (Vec<Value>, u64),
    ) -> PageAnswer {
        let limit = match limit(q) {
            Ok(l) => l,
            Err(e) => return PageAnswer::BadRequest(e),
        };
        let mut state = self.state();
        let ttl_ms = CONTINUE_TTL.as_millis() as i64;
        state.snapshots.retain(|_, s| now.0 - s.taken.0 < ttl_ms);
        if let Some(token) = q.get("continue").filter(|c| !c.is_empty()) {
            let Some((id, after)) = token
                .strip_prefix(TOKEN_PREFIX)
                .and_then(|t| t.split_once(':'))
                .and_then(|(id, after)| Some((id.parse::<u64>().ok()?, after.to_string())))
            else {
                return PageAnswer::BadRequest(
                    "continue key is not valid: not issued by this server".into(),
                );
            };
            if state.expire_next > 0 {
                state.expire_next -= 1;
                state.snapshots.remove(&id);
            }
            let Some(snapshot) = state.snapshots.get(&id) else {
                state.expired += 1;
                return PageAnswer::Expired;
            };
            let items = snapshot.items.clone();
            let version = snapshot.version;
            let from = items.partition_point(|i| key(i).as_str() <= after.as_str());
            return Self::cut(&state, id, &items[from..], limit, version);
        }
        let (mut items, version) = current();
        items.sort_by_key(key);
        let items = std::sync::Arc::new(items);
        Self::cut_fresh(&mut state, items, limit, now, version)
    }

    /// A first page: all of it when it fits, or its first page and a
    /// snapshot kept for the continuations.
    fn cut_fresh(
        state: &mut State,
        items: std::sync::Arc<Vec<Value>>,
        limit: Option<usize>,
        taken: Timestamp,
        version: u64,
    ) -> PageAnswer {
        if items.len() <= Self::page_size(state, limit, items.len()) {
            return PageAnswer::Page {
                items: std::sync::Arc::unwrap_or_clone(items),
                continue_token: None,
                version,
            };
        }
        state.next_id += 1;
        let id = state.next_id;
        state.snapshots.insert(
            id,
            Snapshot {
                taken,
                version,
                items: items.clone(),
            },
        );
        while state.snapshots.len() > MAX_SNAPSHOTS {
            state.snapshots.pop_first();
        }
        Self::cut(state, id, &items, limit, version)
    }

    fn page_size(state: &State, limit: Option<usize>, len: usize) -> usize {
        let cap = if state.page_cap == 0 {
            SHORT_PAGE
        } else {
            state.page_cap
        };
        match limit {
            Some(l) => l.min(cap),
            None => len,
        }
    }

    /// The first `limit` (at most `SHORT_PAGE`) of `rest`, the items after
    /// the last page of snapshot `id`, and a token for what follows.
    fn cut(
        state: &State,
        id: u64,
        rest: &[Value],
        limit: Option<usize>,
        version: u64,
    ) -> PageAnswer {
        let size = Self::page_size(state, limit, rest.len());
        let items = rest[..size.min(rest.len())].to_vec();
        let continue_token = if rest.len() > size {
            items
                .last()
                .map(|i| format!("{TOKEN_PREFIX}{id}:{}", key(i)))
        } else {
            None
        };
        PageAnswer::Page {
            items,
            continue_token,
            version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn items(names: &[&str]) -> Vec<Value> {
        names
            .iter()
            .map(|n| json!({"metadata": {"name": n, "namespace": "shop"}}))
            .collect()
    }

    fn page(answer: PageAnswer) -> (Vec<String>, Option<String>) {
        match answer {
            PageAnswer::Page {
                items,
                continue_token,
                ..
            } => (items.iter().map(key).collect(), continue_token),
            PageAnswer::BadRequest(e) => panic!("400: {e}"),
            PageAnswer::Expired => panic!("410"),
        }
    }

    #[test]
    fn pages_are_short_in_key_order_and_continue_where_they_stopped() {
        let pager = Pager::default();
        let now = Timestamp(0);
        let all = || (items(&["e", "a", "d", "b", "c"]), 7);
        // No limit: everything, in key order.
        let (names, token) = page(pager.page(&query(&[]), now, all));
        assert_eq!(names, ["shop/a", "shop/b", "shop/c", "shop/d", "shop/e"]);
        assert_eq!(token, None);
        // A limit of 500 still gets a short page and a token for the rest.
        let (first, token) = page(pager.page(&query(&[("limit", "500")]), now, all));
        assert_eq!(first, ["shop/a", "shop/b", "shop/c"]);
        let token = token.expect("more remain");
        // The rest comes from the first page's snapshot: what the world
        // shows now is not asked for.
        let (rest, last) = page(pager.page(
            &query(&[("limit", "500"), ("continue", &token)]),
            now,
            || panic!("a continuation reads the snapshot"),
        ));
        assert_eq!(rest, ["shop/d", "shop/e"]);
        assert_eq!(last, None);
        assert!(matches!(
            pager.page(&query(&[("continue", "forged")]), now, all),
            PageAnswer::BadRequest(_)
        ));
    }

    #[test]
    fn a_continuation_past_its_snapshot_is_expired() {
        let pager = Pager::default();
        let all = || (items(&["a", "b", "c", "d"]), 7);
        let (_, token) = page(pager.page(&query(&[("limit", "2")]), Timestamp(0), all));
        let token = token.expect("more remain");
        let next = query(&[("limit", "2"), ("continue", &token)]);
        let late = Timestamp(CONTINUE_TTL.as_millis() as i64);
        assert!(matches!(pager.page(&next, late, all), PageAnswer::Expired));
        // A fresh list starts over, and `expire_next` expires it on demand.
        let (_, token) = page(pager.page(&query(&[("limit", "2")]), late, all));
        let next = query(&[("limit", "2"), ("continue", &token.expect("more"))]);
        pager.expire_next(1);
        assert!(matches!(pager.page(&next, late, all), PageAnswer::Expired));
        assert_eq!(pager.expired_answers(), 2);
    }
}
