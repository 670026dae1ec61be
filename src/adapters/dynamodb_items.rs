//! The two items of the state table (docs/architecture.md §4) and their translation to
//! and from DynamoDB attribute maps. Pure: no client here.

use crate::ports::{LockRecord, OpRecord, Operation, PortError, Timestamp};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

pub type Item = HashMap<String, AttributeValue>;

pub const PK: &str = "pk";
// Lock item attributes.
pub const IN_PROGRESS: &str = "scalingInProgress";
pub const OWNER: &str = "lockOwner";
pub const LEASE_ID: &str = "leaseId";
pub const FENCE: &str = "fence";
pub const UNTIL: &str = "lockUntilEpoch";
pub const LEASE_MS: &str = "leaseDurationMs";
pub const LAST_BREAK_GLASS: &str = "lastBreakGlass";
// Operation item attributes.
pub const REV: &str = "rev";
pub const PHASE: &str = "phase";
pub const OP_ID: &str = "opId";
pub const KIND: &str = "kind";
pub const OPERATION: &str = "operation";
pub const LAST_SCALE_UP: &str = "lastScaleUpEpoch";
pub const LAST_SCALE_END: &str = "lastScaleEndEpoch";
pub const UPDATED: &str = "updatedEpoch";
pub const PAUSE: &str = "pause";
pub const PAUSED_BY: &str = "pausedBy";
pub const PAUSED_UNTIL: &str = "pausedUntilEpoch";

/// The `ClientRequestToken` of an operation write: at most 36 characters
/// (the API's limit; DynamoDB refuses longer ones with a
/// `ValidationException`) and a function of what is written, so an SDK
/// retry of the same write carries the same token and is answered "already
/// applied" instead of being applied twice.
///
/// Fence and revision come first, in hex. The rest is a digest of the
/// lease and the new record: DynamoDB scopes tokens to the account, not the
/// table, and answers a reused token with other contents
/// `IdempotentParameterMismatch` instead of checking its conditions, so
/// two different writes must never share one (a refused "first write" and
/// its successor at the same revision, two clusters in one account).
pub fn transaction_token(lease: &crate::ports::Lease, next: &OpRecord, attempt: u32) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    // Within one process (where SDK retries happen) the same input hashes
    // the same; across releases it may not, which no retry needs.
    let content = serde_json::to_string(next).unwrap_or_default();
    let digest = |salt: u8| {
        let mut h = DefaultHasher::new();
        salt.hash(&mut h);
        attempt.hash(&mut h);
        lease.lease_id.hash(&mut h);
        lease.owner.hash(&mut h);
        content.hash(&mut h);
        h.finish()
    };
    let mut token = format!(
        "{:x}-{:x}-{:016x}{:016x}",
        lease.fence,
        next.rev,
        digest(1),
        digest(2)
    );
    token.truncate(TRANSACTION_TOKEN_MAX);
    token
}

/// `ClientRequestToken`: 1 to 36 characters (botocore's DynamoDB model).
pub const TRANSACTION_TOKEN_MAX: usize = 36;

pub fn lock_key(cluster: &str) -> String {
    format!("lock#{cluster}")
}

pub fn op_key(cluster: &str) -> String {
    format!("op#{cluster}")
}

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s<'a>(item: &'a Item, key: &str) -> Result<&'a str, PortError> {
    match item.get(key) {
        Some(AttributeValue::S(v)) => Ok(v),
        other => Err(PortError::Invalid(format!(
            "attribute {key}: expected a string, found {other:?}"
        ))),
    }
}

fn get_n(item: &Item, key: &str) -> Result<i64, PortError> {
    match item.get(key) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| PortError::Invalid(format!("attribute {key}: \"{v}\" is not an integer"))),
        other => Err(PortError::Invalid(format!(
            "attribute {key}: expected a number, found {other:?}"
        ))),
    }
}

fn get_opt_n(item: &Item, key: &str) -> Result<Option<i64>, PortError> {
    match item.get(key) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(_) => get_n(item, key).map(Some),
    }
}

pub fn lock_from_item(item: &Item) -> Result<LockRecord, PortError> {
    let in_progress = match item.get(IN_PROGRESS) {
        Some(AttributeValue::Bool(b)) => *b,
        other => {
            return Err(PortError::Invalid(format!(
                "attribute {IN_PROGRESS}: expected a boolean, found {other:?}"
            )));
        }
    };
    Ok(LockRecord {
        in_progress,
        owner: item
            .get(OWNER)
            .map_or(Ok(""), |_| get_s(item, OWNER))?
            .to_string(),
        lease_id: item
            .get(LEASE_ID)
            .map_or(Ok(""), |_| get_s(item, LEASE_ID))?
            .to_string(),
        fence: u64::try_from(get_n(item, FENCE)?)
            .map_err(|_| PortError::Invalid("negative fence".into()))?,
        until: Timestamp(millis(get_opt_n(item, UNTIL)?.unwrap_or(0))?),
        lease_ms: get_opt_n(item, LEASE_MS)?.unwrap_or(0).max(0) as u64,
    })
}

/// 2001-01-01 in milliseconds: any real lease end is later; a lease end
/// in seconds (until the year 2300) is smaller.
pub const MS_FLOOR: i64 = 978_307_200_000;

/// Lease ends are milliseconds since the epoch. The seed design's Lambda
/// wrote seconds; read as milliseconds such a value is in January 1970, so
/// every lease would look long expired and be taken over while its holder
/// still acts. Anything that small is refused instead.
fn millis(until: i64) -> Result<i64, PortError> {
    if until != 0 && until < MS_FLOOR {
        return Err(PortError::Invalid(format!(
            "attribute {UNTIL} is {until}, which looks like seconds, not milliseconds (an older tool's lock? stop it first)"
        )));
    }
    Ok(until)
}

/// The operation item. The whole operation is stored as JSON (exact round
/// trip); the flat attributes beside it are for people reading the table
/// and for the write conditions.
pub fn op_record_to_item(cluster: &str, record: &OpRecord) -> Result<Item, PortError> {
    let mut item = Item::new();
    item.insert(PK.into(), s(op_key(cluster)));
    item.insert(REV.into(), n(record.rev));
    if let Some(t) = record.last_scale_up {
        item.insert(LAST_SCALE_UP.into(), n(t.0));
    }
    if let Some(t) = record.last_scale_end {
        item.insert(LAST_SCALE_END.into(), n(t.0));
    }
    if let Some(pause) = &record.pause {
        let json = serde_json::to_string(pause)
            .map_err(|e| PortError::Invalid(format!("encoding the pause: {e}")))?;
        item.insert(PAUSE.into(), s(json));
        item.insert(PAUSED_BY.into(), s(pause.by.clone()));
        item.insert(PAUSED_UNTIL.into(), n(pause.until.0));
    }
    if let Some(op) = &record.op {
        let json = serde_json::to_string(op)
            .map_err(|e| PortError::Invalid(format!("encoding the operation: {e}")))?;
        item.insert(OPERATION.into(), s(json));
        item.insert(PHASE.into(), s(op.phase.as_str()));
        item.insert(OP_ID.into(), s(op.id.clone()));
        item.insert(KIND.into(), s(op.kind.name()));
        item.insert(UPDATED.into(), n(op.updated.0));
    }
    Ok(item)
}

pub fn op_record_from_item(item: &Item) -> Result<OpRecord, PortError> {
    let op = match item.get(OPERATION) {
        None => None,
        Some(_) => Some(
            serde_json::from_str::<Operation>(get_s(item, OPERATION)?)
                .map_err(|e| PortError::Invalid(format!("attribute {OPERATION}: {e}")))?,
        ),
    };
    Ok(OpRecord {
        rev: u64::try_from(get_n(item, REV)?)
            .map_err(|_| PortError::Invalid("negative rev".into()))?,
        op,
        last_scale_up: get_opt_n(item, LAST_SCALE_UP)?.map(Timestamp),
        last_scale_end: get_opt_n(item, LAST_SCALE_END)?.map(Timestamp),
        pause: match item.get(PAUSE) {
            None => None,
            Some(_) => Some(
                serde_json::from_str(get_s(item, PAUSE)?)
                    .map_err(|e| PortError::Invalid(format!("attribute {PAUSE}: {e}")))?,
            ),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::operation::{Intent, start};
    use crate::ports::Origin;

    #[test]
    fn op_record_round_trips() {
        let record = start(
            &OpRecord::default(),
            &Intent::ScaleUp { count: 2 },
            "op-1",
            Origin::Engine,
            vec!["why".into()],
            4,
            Timestamp(5),
        );
        let record = OpRecord {
            last_scale_up: Some(Timestamp(1)),
            last_scale_end: Some(Timestamp(2)),
            ..record
        };
        let item = op_record_to_item("c", &record).unwrap();
        assert_eq!(item.get(PHASE), Some(&s("LaunchIntended")));
        assert_eq!(op_record_from_item(&item).unwrap(), record);
        let empty = op_record_to_item("c", &OpRecord::default()).unwrap();
        assert_eq!(op_record_from_item(&empty).unwrap(), OpRecord::default());
    }

    #[test]
    fn a_transaction_token_fits_the_api_and_names_one_write() {
        let lease = crate::ports::Lease {
            owner: "host:1:auto:x".into(),
            lease_id: "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9".into(),
            fence: 144,
        };
        let record = |rev: u64, note: &str| OpRecord {
            rev,
            pause: Some(crate::ports::Pause {
                by: "ops".into(),
                reason: note.into(),
                since: Timestamp(1),
                until: Timestamp(2),
                circuit: true,
            }),
            ..OpRecord::default()
        };
        let token = transaction_token(&lease, &record(7, "a"), 0);
        assert!(token.starts_with("90-7-"), "{token}");
        assert_eq!(token.len(), TRANSACTION_TOKEN_MAX);
        // Deterministic: a retry of the same write carries the same token.
        assert_eq!(transaction_token(&lease, &record(7, "a"), 0), token);
        // Another revision, another content, another fence: another token.
        assert_ne!(transaction_token(&lease, &record(8, "a"), 0), token);
        assert_ne!(transaction_token(&lease, &record(7, "b"), 0), token);
        // A retry after a transaction conflict is a new attempt.
        assert_ne!(transaction_token(&lease, &record(7, "a"), 1), token);
        let other = crate::ports::Lease {
            fence: 145,
            ..lease.clone()
        };
        assert_ne!(transaction_token(&other, &record(7, "a"), 0), token);
        // The largest fence and revision still fit and stay distinct.
        let huge = crate::ports::Lease {
            fence: u64::MAX,
            ..lease
        };
        let a = transaction_token(&huge, &record(u64::MAX, "a"), 0);
        let b = transaction_token(&huge, &record(u64::MAX - 1, "a"), 0);
        assert!(a.len() <= TRANSACTION_TOKEN_MAX && b.len() <= TRANSACTION_TOKEN_MAX);
        assert_ne!(a, b);
    }

    #[test]
    fn garbled_items_are_errors_not_panics() {
        let mut item = Item::new();
        item.insert(IN_PROGRESS.into(), s("yes"));
        assert!(lock_from_item(&item).is_err());
        let mut item = Item::new();
        item.insert(REV.into(), n("x"));
        assert!(op_record_from_item(&item).is_err());
        // The seed's Lambda: no fence, a lease end in seconds.
        let mut seed = Item::new();
        seed.insert(IN_PROGRESS.into(), AttributeValue::Bool(true));
        seed.insert(UNTIL.into(), n(1_767_571_260));
        assert!(lock_from_item(&seed).is_err(), "no fence");
        seed.insert(FENCE.into(), n(3));
        let err = lock_from_item(&seed).unwrap_err().to_string();
        assert!(err.contains("looks like seconds"), "{err}");
        let mut item = Item::new();
        item.insert(REV.into(), n(1));
        item.insert(OPERATION.into(), s("{not json"));
        assert!(op_record_from_item(&item).is_err());
    }
}
