//! One kind's list-then-watch loop, the way client-go's reflector runs:
//! list (paged) and note the list's version, watch from it, apply each
//! event to the store, and after the server ends a watch (its
//! `timeoutSeconds`) watch again from the last version seen. A `410`
//! means the server can no longer replay from there: list again. A failed
//! or garbled stream, or one gone silent, marks the store out of step and
//! lists again after a back-off.
//!
//! The stream is read line by line here rather than through kube-rs's
//! `watcher`: that hides bookmarks and the end of each watch, which are
//! the cache's evidence that it is current, and an event that does not
//! decode surfaces there without the object's name.

use super::store::Store;
use super::{IDLE_LIMIT, WATCH_SECONDS};
use crate::adapters::kube::{list_versioned_with, port_error};
use ::kube::api::{Api, ListParams, WatchParams};
use ::kube::{Client, Resource, ResourceExt};
use futures::io::{AsyncBufRead, AsyncBufReadExt};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tracing::{debug, warn};

/// The longest one event may be; a line that grows past it is a server
/// gone wrong, and the view must not grow without bound on it.
const MAX_EVENT_BYTES: usize = 16 << 20;

const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MOST: Duration = Duration::from_secs(30);

/// After the server refused a watch, how long until it is asked again
/// (the RBAC may have been fixed); meanwhile the kind is listed per tick.
pub const REFUSED_RETRY: Duration = Duration::from_secs(5 * 60);

/// Whether a change should wake the engine: what the object was, what it
/// is (`None`: absent).
pub type WakeRule<D> = Box<dyn Fn(Option<&D>, Option<&D>) -> bool + Send + Sync>;

pub struct Source<K, D> {
    /// `nodes`, `pods`, …: for messages.
    pub what: &'static str,
    /// For the lists (bounded reads).
    pub api: Api<K>,
    /// For the watches: a client without a read timeout, since a quiet
    /// watch is silent for up to `WATCH_SECONDS` (`IDLE_LIMIT` bounds it).
    pub watch_client: Client,
    pub labels: Option<String>,
    pub convert: fn(&K) -> Result<D, String>,
    pub wakes: WakeRule<D>,
    /// A relist takes the cache's copy of an unchanged object
    /// (`Store::shared`): for pods, whose clone is shared; a node's or a
    /// budget's would be a second copy for nothing.
    pub share: bool,
}

enum End {
    /// The server ended the watch: watch again from the last version.
    Clean,
    /// The server will not let us watch (403, 404, 405 at the start).
    Refused(String),
    /// `410`: list again, at once.
    Gone(String),
    /// List again after a back-off.
    Failed(String),
}

/// `namespace/name`, or `name` for a cluster-scoped object.
fn key_of<K: ResourceExt>(k: &K) -> String {
    match k.namespace() {
        Some(ns) => format!("{ns}/{}", k.name_any()),
        None => k.name_any(),
    }
}

fn key_of_value(v: &Value) -> String {
    let name = v
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("(unnamed)");
    match v.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// A sleep of `backoff`, which doubles for next time (to `BACKOFF_MOST`).
fn pause(backoff: &mut Duration) -> tokio::time::Sleep {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(BACKOFF_MOST);
    tokio::time::sleep(wait)
}

/// Runs until the task is aborted.
pub async fn run<K, D>(src: Source<K, D>, store: Arc<Store<D>>, wake: Arc<Notify>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    D: Clone + PartialEq + Send + 'static,
{
    let mut backoff = BACKOFF_FIRST;
    // The last failure told at WARN: each kind of failure once, not once
    // per retry; cleared (and said) when a watch has run its course again.
    let mut warned: Option<String> = None;
    let mut gone_in_a_row = 0u32;
    loop {
        let mut params = ListParams::default();
        if let Some(labels) = &src.labels {
            params = params.labels(labels);
        }
        let what = format!("listing {}", src.what);
        let convert = src.convert;
        // What has not changed since the last list is the cache's copy,
        // shared: a relist (after a 410 or a cut) holds one cluster, not two.
        let read = |k: K| {
            let key = key_of(&k);
            let converted = if src.share {
                convert(&k).map(|d| store.shared(&key, d))
            } else {
                convert(&k)
            };
            (key, converted)
        };
        let listed = match list_versioned_with(&src.api, params, &what, read).await {
            Ok((_, v)) if v.is_empty() => Err(format!("{what}: the list has no resourceVersion")),
            Ok(listed) => Ok(listed),
            Err(e) => Err(e.to_string()),
        };
        let mut version = match listed {
            Ok((listed, v)) => {
                if store.replace(listed) {
                    wake.notify_one();
                }
                v
            }
            Err(why) => {
                if warned.as_deref() != Some(why.as_str()) {
                    warn!(target: "kubernetes", "{} watch: {why}; Unknown until listed", src.what);
                    warned = Some(why.clone());
                }
                store.failed(why);
                pause(&mut backoff).await;
                continue;
            }
        };
        loop {
            match watch_once(&src, &store, &wake, &mut version).await {
                End::Clean => {
                    backoff = BACKOFF_FIRST;
                    gone_in_a_row = 0;
                    if warned.take().is_some() {
                        tracing::info!(target: "kubernetes", "{} watch in step again", src.what);
                    }
                }
                End::Refused(why) => {
                    if store.refused().is_none() {
                        tracing::error!(target: "kubernetes", "{}: the API server refuses to watch them ({why}); listing them every tick instead. Grant `watch` beside `list` on them to follow changes; asked again every {} min", src.what, REFUSED_RETRY.as_secs() / 60);
                    }
                    store.refuse(why);
                    tokio::time::sleep(REFUSED_RETRY).await;
                    break;
                }
                End::Gone(why) => {
                    debug!(target: "kubernetes", "{} watch: {why}; listing again", src.what);
                    store.failed(why);
                    // A list that is already too old to watch from (the
                    // server's history shorter than the list takes) must
                    // not become lists back to back.
                    gone_in_a_row += 1;
                    if gone_in_a_row > 1 {
                        pause(&mut backoff).await;
                    }
                    break;
                }
                End::Failed(why) => {
                    if warned.as_deref() != Some(why.as_str()) {
                        warn!(target: "kubernetes", "{} watch: {why}; Unknown until listed again", src.what);
                        warned = Some(why.clone());
                    }
                    store.failed(why);
                    pause(&mut backoff).await;
                    break;
                }
            }
        }
    }
}

/// One watch from `version`, until the server ends it or it fails;
/// `version` follows the events.
async fn watch_once<K, D>(
    src: &Source<K, D>,
    store: &Store<D>,
    wake: &Notify,
    version: &mut String,
) -> End
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    D: Clone + PartialEq + Send + 'static,
{
    let mut params = WatchParams::default().timeout(WATCH_SECONDS);
    if let Some(labels) = &src.labels {
        params = params.labels(labels);
    }
    let request = match ::kube::core::Request::new(src.api.resource_url()).watch(&params, version) {
        Ok(r) => r,
        Err(e) => return End::Failed(format!("building the watch request: {e}")),
    };
    let started = tokio::time::timeout(IDLE_LIMIT, src.watch_client.request_stream(request)).await;
    let reader = match started {
        Err(_) => {
            return End::Failed(format!(
                "no answer to the watch in {} s",
                IDLE_LIMIT.as_secs()
            ));
        }
        Ok(Err(::kube::Error::Api(status))) if status.code == 410 => {
            return End::Gone(format!("410 {}", status.message));
        }
        // Not 401: credentials that expired are refreshed and retried
        // (a back-off), not a missing verb to grant.
        Ok(Err(::kube::Error::Api(status))) if (403..=405).contains(&status.code) => {
            return End::Refused(format!(
                "{} {} ({})",
                status.code, status.message, status.reason
            ));
        }
        Ok(Err(e)) => return End::Failed(port_error("starting the watch", e, false).to_string()),
        Ok(Ok(reader)) => reader,
    };
    store.contact();
    let mut reader = Box::pin(reader);
    let mut line = Vec::new();
    loop {
        let read = tokio::time::timeout(IDLE_LIMIT, read_line(&mut reader, &mut line)).await;
        match read {
            Err(_) => {
                return End::Failed(format!(
                    "no word from the server for {} s",
                    IDLE_LIMIT.as_secs()
                ));
            }
            Ok(Err(e)) => return End::Failed(format!("the watch stream failed: {e}")),
            Ok(Ok(Line::End)) => {
                store.contact();
                return End::Clean;
            }
            Ok(Ok(Line::Cut)) => {
                return End::Failed("the stream ended in the middle of an event".into());
            }
            Ok(Ok(Line::TooLong)) => {
                return End::Failed(format!("an event over {} MiB", MAX_EVENT_BYTES >> 20));
            }
            Ok(Ok(Line::Whole)) if line.iter().all(u8::is_ascii_whitespace) => {}
            Ok(Ok(Line::Whole)) => {
                if let Some(end) = apply(src, store, wake, version, &line) {
                    return end;
                }
            }
        }
    }
}

/// One event into the store; `Some` when it ends the watch.
fn apply<K, D>(
    src: &Source<K, D>,
    store: &Store<D>,
    wake: &Notify,
    version: &mut String,
    line: &[u8],
) -> Option<End>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    D: Clone + PartialEq,
{
    let Ok(mut event) = serde_json::from_slice::<Value>(line) else {
        return Some(End::Failed("a watch event that is not JSON".into()));
    };
    let kind = event
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let object = event
        .get_mut("object")
        .map(Value::take)
        .unwrap_or(Value::Null);
    if kind == "ERROR" {
        let code = object.get("code").and_then(Value::as_u64).unwrap_or(0);
        let message = object.get("message").and_then(Value::as_str).unwrap_or("");
        return Some(if code == 410 {
            End::Gone(format!("410 {message}"))
        } else {
            End::Failed(format!("the server ended the watch: {code} {message}"))
        });
    }
    let Some(rv) = object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
    else {
        return Some(End::Failed(format!(
            "a {kind} event without a resourceVersion"
        )));
    };
    *version = rv.to_string();
    match kind.as_str() {
        "BOOKMARK" => store.contact(),
        "ADDED" | "MODIFIED" => {
            let key = key_of_value(&object);
            let converted = match serde_json::from_value::<K>(object) {
                Ok(k) => (src.convert)(&k),
                Err(e) => Err(format!("does not decode: {e}")),
            };
            if let Err(why) = &converted {
                warn!(target: "kubernetes", "{} {key}: {why}; the {} are Unknown until it reads", src.what, src.what);
            }
            let readable = converted.is_ok();
            let applied = store.apply(key, converted);
            if applied.was_bad && applied.new.is_some() {
                tracing::info!(target: "kubernetes", "{} readable again", src.what);
            }
            // An unreadable object is not a deletion to wake for.
            if readable && (src.wakes)(applied.old.as_ref(), applied.new.as_ref()) {
                wake.notify_one();
            }
        }
        "DELETED" => {
            let old = store.remove(&key_of_value(&object));
            if (src.wakes)(old.as_ref(), None) {
                wake.notify_one();
            }
        }
        other => return Some(End::Failed(format!("an event of unknown type {other:?}"))),
    }
    None
}

enum Line {
    Whole,
    /// The stream ended between events.
    End,
    /// The stream ended inside one.
    Cut,
    TooLong,
}

/// The next line into `line` (without its `\n`), bounded.
async fn read_line<R: AsyncBufRead + ?Sized>(
    reader: &mut std::pin::Pin<Box<R>>,
    line: &mut Vec<u8>,
) -> std::io::Result<Line> {
    line.clear();
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(if line.is_empty() {
                Line::End
            } else {
                Line::Cut
            });
        }
        if let Some(i) = chunk.iter().position(|b| *b == b'\n') {
            line.extend_from_slice(&chunk[..i]);
            reader.as_mut().consume(i + 1);
            return Ok(Line::Whole);
        }
        let n = chunk.len();
        line.extend_from_slice(chunk);
        reader.as_mut().consume(n);
        if line.len() > MAX_EVENT_BYTES {
            return Ok(Line::TooLong);
        }
    }
}
