//! The `StateStore` conformance suite, written once against the trait and
//! run against the simulator, against the DynamoDB adapter on DynamoDB
//! Local (AWS's own emulator, through a proxy that checks every request
//! against botocore's model of the real service), and on moto as a second
//! implementation. Times are passed explicitly, so expiry needs no sleeping.

use crate::support;

use k3s_autoscaler::adapters::SystemClock;
use k3s_autoscaler::adapters::dynamodb::{DynamoStateStore, InitOutcome};
use k3s_autoscaler::engine::operation::{Intent, start};
use k3s_autoscaler::ports::*;
use k3s_autoscaler::sim::ScenarioKind;
use std::sync::Arc;
use std::time::Duration;

type Store = Arc<dyn StateStore>;

const T0: Timestamp = Timestamp(1_767_571_200_000);
const LEASE: Duration = Duration::from_secs(60);
const SKEW: Duration = Duration::from_secs(5);

fn at(secs: i64) -> Timestamp {
    Timestamp(T0.0 + secs * 1000)
}

/// Lease ids as the engine makes them (UUID-shaped, 36 characters, unique
/// per acquisition), led by a short label: a short id once hid a token the
/// real service refuses. Unique because DynamoDB's idempotency tokens are
/// scoped to the account, not the table.
fn uuid_like(label: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let nonce = nanos ^ (u64::from(std::process::id()) << 40) ^ NEXT.fetch_add(1, Ordering::SeqCst);
    let hex: String = label.bytes().take(8).map(|b| format!("{b:02x}")).collect();
    let p = format!("{hex:0<16}{nonce:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &p[0..8],
        &p[8..12],
        &p[12..16],
        &p[16..20],
        &p[20..32]
    )
}

fn req(owner: &str, lease_id: &str, now: Timestamp) -> AcquireRequest {
    AcquireRequest {
        owner: owner.into(),
        lease_id: uuid_like(lease_id),
        now,
        lease: LEASE,
        skew_margin: SKEW,
    }
}

fn lease_of(lock: &LockRecord) -> Lease {
    Lease {
        owner: lock.owner.clone(),
        lease_id: lock.lease_id.clone(),
        fence: lock.fence,
    }
}

async fn take(store: &Store, owner: &str, lease_id: &str, now: Timestamp) -> Lease {
    let lock = store
        .acquire(&req(owner, lease_id, now))
        .await
        .expect("acquire call")
        .expect("the lock is free");
    lease_of(&lock)
}

fn scale_up(previous: &OpRecord, id: &str, fence: u64) -> OpRecord {
    start(
        previous,
        &Intent::ScaleUp { count: 1 },
        id,
        Origin::Engine,
        vec![],
        fence,
        T0,
    )
}

mod cases {
    use super::*;

    pub async fn empty_table_reads_as_nothing(store: Store) {
        let snapshot = store.read().await.unwrap();
        assert_eq!(snapshot.lock, None);
        assert_eq!(snapshot.record, OpRecord::default());
    }

    pub async fn acquire_renew_release(store: Store) {
        let a = take(&store, "a", "la", at(0)).await;
        assert_eq!(a.fence, 1);
        let lock = store.read().await.unwrap().lock.unwrap();
        assert!(lock.in_progress);
        assert_eq!((lock.owner.as_str(), lock.until), ("a", at(60)));
        assert_eq!(lock.lease_ms, 60_000);
        // Held: refused to another engine.
        assert_eq!(store.acquire(&req("b", "lb", at(1))).await.unwrap(), None);
        store.renew(&a, at(20), LEASE).await.unwrap();
        assert_eq!(store.read().await.unwrap().lock.unwrap().until, at(80));
        // Past the original expiry but inside the renewed one: still held.
        assert_eq!(store.acquire(&req("b", "lb", at(70))).await.unwrap(), None);
        store.release(&a).await.unwrap();
        assert!(!store.read().await.unwrap().lock.unwrap().in_progress);
        let b = take(&store, "b", "lb", at(71)).await;
        assert_eq!(b.fence, 2);
    }

    pub async fn an_expired_lease_is_taken_over_after_the_skew_margin(store: Store) {
        let a = take(&store, "a", "la", at(0)).await;
        // Expired at 60 s, but within the 5 s skew margin: refused.
        assert_eq!(store.acquire(&req("b", "lb", at(64))).await.unwrap(), None);
        let b = take(&store, "b", "lb", at(66)).await;
        assert!(b.fence > a.fence);
        assert_eq!(store.read().await.unwrap().lock.unwrap().owner, "b");
    }

    pub async fn a_stale_holder_is_fenced_out(store: Store) {
        let a = take(&store, "a", "la", at(0)).await;
        let first = scale_up(&OpRecord::default(), "op-a", a.fence);
        store
            .write_op(&a, &OpRecord::default(), &first)
            .await
            .unwrap();
        let b = take(&store, "b", "lb", at(120)).await;
        let stale = scale_up(&first, "op-stale", a.fence);
        let refused = store.write_op(&a, &first, &stale).await.unwrap_err();
        assert!(
            matches!(refused, PortError::PreconditionFailed(_)),
            "{refused}"
        );
        assert!(matches!(
            store.renew(&a, at(121), LEASE).await,
            Err(PortError::PreconditionFailed(_))
        ));
        assert!(matches!(
            store.release(&a).await,
            Err(PortError::PreconditionFailed(_))
        ));
        assert_eq!(
            store.read().await.unwrap().record,
            first,
            "nothing stale landed"
        );
        // The new holder writes on top of what is there.
        let mut next = first.clone();
        next.rev += 1;
        store.write_op(&b, &first, &next).await.unwrap();
        assert_eq!(store.read().await.unwrap().record.rev, 2);
    }

    pub async fn fences_strictly_increase(store: Store) {
        let mut last = 0;
        for i in 0..5 {
            let lease = take(&store, "a", &format!("l{i}"), at(i)).await;
            assert!(lease.fence > last, "fence {} after {last}", lease.fence);
            last = lease.fence;
            store.release(&lease).await.unwrap();
        }
        let audit = BreakGlass {
            who: "ops@bastion".into(),
            reason: "conformance".into(),
            now: at(10),
        };
        let forced = store.force_unlock(&audit).await.unwrap();
        assert!(forced.fence > last);
        assert!(!forced.in_progress);
        let next = take(&store, "b", "lb", at(11)).await;
        assert!(next.fence > forced.fence);
    }

    pub async fn a_write_needs_the_expected_revision_and_phase(store: Store) {
        let a = take(&store, "a", "la", at(0)).await;
        let first = scale_up(&OpRecord::default(), "op-1", a.fence);
        store
            .write_op(&a, &OpRecord::default(), &first)
            .await
            .unwrap();
        // A second "first write" (previous = nothing) is refused.
        let other = scale_up(&OpRecord::default(), "op-2", a.fence);
        assert!(matches!(
            store.write_op(&a, &OpRecord::default(), &other).await,
            Err(PortError::PreconditionFailed(_))
        ));
        // Right revision, wrong phase: refused.
        let mut wrong_phase = first.clone();
        if let Some(op) = wrong_phase.op.as_mut() {
            op.phase = OpPhase::Verifying;
        }
        let mut next = first.clone();
        next.rev += 1;
        assert!(matches!(
            store.write_op(&a, &wrong_phase, &next).await,
            Err(PortError::PreconditionFailed(_))
        ));
        store.write_op(&a, &first, &next).await.unwrap();
        assert_eq!(store.read().await.unwrap().record, next);
    }

    pub async fn a_write_after_release_is_refused(store: Store) {
        let a = take(&store, "a", "la", at(0)).await;
        store.release(&a).await.unwrap();
        let record = scale_up(&OpRecord::default(), "op-1", a.fence);
        assert!(matches!(
            store.write_op(&a, &OpRecord::default(), &record).await,
            Err(PortError::PreconditionFailed(_))
        ));
    }

    pub async fn the_record_round_trips_with_cooldowns(store: Store) {
        let a = take(&store, "a", "la", at(0)).await;
        let mut record = scale_up(&OpRecord::default(), "op-1", a.fence);
        record.last_scale_up = Some(at(-300));
        record.last_scale_end = Some(at(-200));
        store
            .write_op(&a, &OpRecord::default(), &record)
            .await
            .unwrap();
        assert_eq!(store.read().await.unwrap().record, record);
    }
}

/// A store and whatever must be checked once the case has run.
struct Subject {
    store: Store,
    proxy: Option<support::proxy::CountingProxy>,
}

impl Subject {
    fn finish(self) {
        if let Some(proxy) = self.proxy {
            let refused = proxy.violations();
            assert!(
                refused.is_empty(),
                "requests the real DynamoDB refuses:\n{}",
                refused.join("\n")
            );
            assert!(proxy.total() > 0, "the case went through the proxy");
        }
    }
}

async fn sim_store() -> Subject {
    let (_, demo) = support::demo(ScenarioKind::Steady, 1, false);
    Subject {
        store: demo.ports.state.clone(),
        proxy: None,
    }
}

async fn dynamodb_local_store() -> Subject {
    let proxy = support::proxy::CountingProxy::start(&support::dynamodb_url()).await;
    let sdk = support::sdk_at(&proxy.url).await;
    let store = DynamoStateStore::new(&sdk, &support::unique("conf-state"), "conformance");
    assert_eq!(store.create_table().await.unwrap(), InitOutcome::Created);
    Subject {
        store: Arc::new(store),
        proxy: Some(proxy),
    }
}

async fn moto_store() -> Subject {
    let sdk = support::moto_sdk().await;
    let store = DynamoStateStore::new(&sdk, &support::unique("conf-state"), "conformance");
    assert_eq!(store.create_table().await.unwrap(), InitOutcome::Created);
    Subject {
        store: Arc::new(store),
        proxy: None,
    }
}

/// One case on one backend: the case gets the store, then the backend's
/// own checks run (the proxy saw every call go through it).
async fn run(subject: Subject, case: impl AsyncFnOnce(Store)) {
    case(subject.store.clone()).await;
    subject.finish()
}

async fn with_sim(case: impl AsyncFnOnce(Store), _: ()) {
    run(sim_store().await, case).await
}

async fn with_dynamodb_local(case: impl AsyncFnOnce(Store), _: ()) {
    run(dynamodb_local_store().await, case).await
}

async fn with_moto(case: impl AsyncFnOnce(Store), _: ()) {
    run(moto_store().await, case).await
}

conformance! {
    backends {
        on_simulator => with_sim,
        on_dynamodb_local => with_dynamodb_local,
        on_moto => with_moto,
    }
    cases {
        empty_table_reads_as_nothing,
        acquire_renew_release,
        an_expired_lease_is_taken_over_after_the_skew_margin,
        a_stale_holder_is_fenced_out,
        fences_strictly_increase,
        a_write_needs_the_expected_revision_and_phase,
        a_write_after_release_is_refused,
        the_record_round_trips_with_cooldowns,
    }
}

async fn init_case(sdk: aws_config::SdkConfig) {
    let store = DynamoStateStore::new(&sdk, &support::unique("conf-init"), "c");
    let missing = store.check_table().await.unwrap_err();
    assert!(
        missing.to_string().contains("k3s-autoscaler init"),
        "{missing}"
    );
    assert_eq!(store.create_table().await.unwrap(), InitOutcome::Created);
    assert_eq!(store.create_table().await.unwrap(), InitOutcome::Exists);
    store.check_table().await.unwrap();
}

#[tokio::test]
async fn init_is_idempotent_and_a_missing_table_says_run_init() {
    let proxy = support::proxy::CountingProxy::start(&support::dynamodb_url()).await;
    init_case(support::sdk_at(&proxy.url).await).await;
    assert_eq!(proxy.violations(), Vec::<String>::new());
    init_case(support::moto_sdk().await).await;
}

/// The checker can fail: the token the adapter once sent (lease id, fence
/// and revision, 41 characters) is flagged by the model check, and
/// DynamoDB Local itself refuses it, while moto accepts it.
#[tokio::test]
async fn the_request_checker_and_dynamodb_local_refuse_what_moto_accepts() {
    let long_token = format!("{}-144-3", uuid_like("lease"));
    assert_eq!(long_token.len(), 42);
    let send = |sdk: aws_config::SdkConfig, table: String| {
        let token = long_token.clone();
        async move {
            let store = DynamoStateStore::new(&sdk, &table, "c");
            store.create_table().await.unwrap();
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            client
                .transact_write_items()
                .transact_items(
                    aws_sdk_dynamodb::types::TransactWriteItem::builder()
                        .update(
                            aws_sdk_dynamodb::types::Update::builder()
                                .table_name(&table)
                                .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("x".into()))
                                .update_expression("SET v = :v")
                                .expression_attribute_values(
                                    ":v",
                                    aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
                                )
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .client_request_token(token)
                .send()
                .await
        }
    };
    let proxy = support::proxy::CountingProxy::start(&support::dynamodb_url()).await;
    let refused = send(
        support::sdk_at(&proxy.url).await,
        support::unique("conf-bad"),
    )
    .await
    .unwrap_err();
    let text = format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&refused));
    assert!(text.contains("ValidationException"), "{text}");
    assert!(text.contains("36"), "{text}");
    let flagged = proxy.violations();
    assert!(
        flagged
            .iter()
            .any(|v| v.contains("ClientRequestToken") && v.contains("at most 36")),
        "{flagged:?}"
    );
    // moto takes it: a peer that accepts this proves nothing.
    send(support::moto_sdk().await, support::unique("conf-bad"))
        .await
        .unwrap();
}

/// Lock items this version cannot read (the seed's Lambda wrote one with no
/// fence and its lease end in seconds; another is garbled) are a clear error
/// naming the item and `unlock --force`, are never taken over as "expired",
/// and `unlock --force` turns them into a lock this version can use, with a
/// fence above the operation record's.
#[tokio::test]
async fn an_unreadable_lock_item_names_itself_and_unlock_force_repairs_it() {
    use aws_sdk_dynamodb::types::AttributeValue as V;
    for (label, fence) in [("seed", None), ("garbled", Some(V::S("seven".into())))] {
        let proxy = support::proxy::CountingProxy::start(&support::dynamodb_url()).await;
        let sdk = support::sdk_at(&proxy.url).await;
        let table = support::unique("conf-old");
        let store = DynamoStateStore::new(&sdk, &table, "c");
        store.create_table().await.unwrap();
        // A recorded operation written at fence 6 by this version.
        let a = take(
            &(Arc::new(DynamoStateStore::new(&sdk, &table, "c")) as Store),
            "a",
            "la",
            at(0),
        )
        .await;
        let mut record = scale_up(&OpRecord::default(), "op-old", a.fence);
        if let Some(op) = record.op.as_mut() {
            op.fence = 6;
        }
        store
            .write_op(&a, &OpRecord::default(), &record)
            .await
            .unwrap();
        // Then an older tool overwrites the lock item its own way.
        let now_secs = (T0.0 / 1000) + 30;
        let mut put = aws_sdk_dynamodb::Client::new(&sdk)
            .put_item()
            .table_name(&table)
            .item("pk", V::S("lock#c".into()))
            .item("scalingInProgress", V::Bool(true))
            .item("lockOwner", V::S("lambda".into()))
            .item("lockUntilEpoch", V::N(now_secs.to_string()));
        if let Some(f) = fence.clone() {
            put = put.item("fence", f);
        }
        put.send().await.unwrap();

        let err = store.read().await.unwrap_err().to_string();
        assert!(err.contains("\"lock#c\""), "{label}: {err}");
        assert!(err.contains(&table), "{label}: {err}");
        assert!(err.contains("unlock --force"), "{label}: {err}");
        // Not "expired": a seconds-based lease end is never taken over.
        assert_eq!(
            store.acquire(&req("b", "lb", at(3600))).await.unwrap(),
            None,
            "{label}: an unreadable lock was taken over"
        );
        let forced = store
            .force_unlock(&BreakGlass {
                who: "ops@bastion".into(),
                reason: "an older tool's lock".into(),
                now: at(3600),
            })
            .await
            .unwrap();
        assert!(!forced.in_progress);
        assert!(
            forced.fence > 6,
            "{label}: fence {} after the record's 6",
            forced.fence
        );
        let snapshot = store.read().await.unwrap();
        assert_eq!(
            snapshot.record, record,
            "{label}: the operation record is kept"
        );
        let b = take(&(Arc::new(store) as Store), "b", "lb", at(3601)).await;
        assert!(b.fence > forced.fence);
        assert_eq!(proxy.violations(), Vec::<String>::new());
    }
}

/// A transaction that met another one on the same item (DynamoDB cancels it
/// with `TransactionConflict`) was not applied and is tried again, briefly;
/// if the conflict lasts, the write is reported as transient, never as
/// "lock lost" and never as applied.
#[tokio::test]
async fn a_transaction_conflict_is_retried_then_reported_transient() {
    for (conflicts, applied) in [(2, true), (10, false)] {
        let proxy =
            support::proxy::CountingProxy::conflicting(&support::dynamodb_url(), conflicts).await;
        let sdk = support::sdk_at(&proxy.url).await;
        let concrete = DynamoStateStore::new(&sdk, &support::unique("conf-tc"), "c");
        concrete.create_table().await.unwrap();
        let store: Store = Arc::new(concrete);
        let a = take(&store, "a", "la", at(0)).await;
        let record = scale_up(&OpRecord::default(), "op-1", a.fence);
        let result = store.write_op(&a, &OpRecord::default(), &record).await;
        let writes = proxy
            .calls()
            .iter()
            .filter(|c| c.as_str() == "dynamodb:TransactWriteItems")
            .count();
        if applied {
            result.unwrap();
            assert_eq!(writes, 3, "two conflicts, then the write");
            assert_eq!(store.read().await.unwrap().record, record);
        } else {
            let e = result.unwrap_err();
            assert!(e.is_transient(), "{e}");
            assert!(e.to_string().contains("transaction conflict"), "{e}");
            assert!(!e.to_string().contains("lock lost"), "{e}");
            assert_eq!(store.read().await.unwrap().record, OpRecord::default());
        }
        assert_eq!(proxy.violations(), Vec::<String>::new());
    }
}

/// The limits the model does not carry are checked by hand, and the
/// checks can fail: a table name too short or with a character DynamoDB
/// refuses, an expression attribute name without its `#`, an item over
/// 400 KB. A request within every limit passes clean.
#[test]
fn the_hand_written_dynamodb_limits_can_fail() {
    let model = support::service_model::ServiceModel::dynamodb();
    let put = |table: &str, names: serde_json::Value, payload: usize| {
        serde_json::json!({
            "TableName": table,
            "Item": {"pk": {"S": "lock#c"}, "v": {"S": "x".repeat(payload)}},
            "ConditionExpression": "attribute_not_exists(#pk)",
            "ExpressionAttributeNames": names,
        })
    };
    let clean = model.check(
        "PutItem",
        &put("k3s-autoscaler", serde_json::json!({"#pk": "pk"}), 10),
    );
    assert!(clean.is_empty(), "{clean:?}");
    for (body, want) in [
        (
            put("ab", serde_json::json!({"#pk": "pk"}), 10),
            "table name \"ab\"",
        ),
        (
            put("my table!", serde_json::json!({"#pk": "pk"}), 10),
            "table name \"my table!\"",
        ),
        (
            put("k3s-autoscaler", serde_json::json!({"pk": "pk"}), 10),
            "\"pk\" is not #",
        ),
        (
            put(
                "k3s-autoscaler",
                serde_json::json!({"#pk": "pk"}),
                401 * 1024,
            ),
            "an item of",
        ),
    ] {
        let flagged = model.check("PutItem", &body);
        assert!(
            flagged.iter().any(|v| v.contains(want)),
            "{want}: {flagged:?}"
        );
    }
    // An update is measured by its key and the values it sets.
    let update = serde_json::json!({
        "TableName": "k3s-autoscaler",
        "Key": {"pk": {"S": "op#c"}},
        "UpdateExpression": "SET #r = :r",
        "ExpressionAttributeNames": {"#r": "record"},
        "ExpressionAttributeValues": {":r": {"S": "x".repeat(401 * 1024)}},
    });
    let flagged = model.check("UpdateItem", &update);
    assert!(
        flagged.iter().any(|v| v.contains("an update of at least")),
        "{flagged:?}"
    );
    // Inside a transaction too.
    let nested =
        serde_json::json!({"TransactItems": [{"Put": put("x", serde_json::json!({}), 1)}]});
    let flagged = model.check("TransactWriteItems", &nested);
    assert!(
        flagged.iter().any(|v| v.contains("table name \"x\"")),
        "{flagged:?}"
    );
}

/// The clock check on AWS's own emulator: DynamoDB Local's
/// answer carries a `Date` the adapter reads (a sample, within a few
/// seconds of ours), and a host whose clock is five minutes ahead is
/// refused the lock with the reason, while a correct clock takes it.
#[tokio::test]
async fn a_skewed_clock_is_refused_the_lock_on_dynamodb_local() {
    use k3s_autoscaler::config::Config;
    use k3s_autoscaler::runtime::ids::IdSource;
    use k3s_autoscaler::runtime::lease::{Acquired, LockClient};
    use k3s_autoscaler::runtime::settings::engine_settings;
    use k3s_autoscaler::sim::SimClock;
    let sdk = support::dynamodb_sdk().await;
    let store = DynamoStateStore::new(&sdk, &support::unique("conf-skew"), "c");
    store.create_table().await.unwrap();
    let store: Store = Arc::new(store);
    let system: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let sample = store
        .clock_sample(system.as_ref())
        .await
        .unwrap()
        .expect("DynamoDB Local answers with a Date header");
    let (low, high) = sample.skew_bounds();
    assert!(low <= 5_000 && high >= -5_000, "{sample:?}");
    let rules = engine_settings(&Config::default()).lease;
    let client = |clock: Arc<dyn Clock>, owner: &str| {
        LockClient::new(
            store.clone(),
            clock,
            rules.clone(),
            owner.to_string(),
            Arc::new(IdSource::random()),
        )
    };
    let ahead: Arc<dyn Clock> = Arc::new(SimClock::scaled(
        system.now().plus(Duration::from_secs(300)),
        1.0,
    ));
    match client(ahead, "skewed").acquire().await.unwrap() {
        Acquired::ClockSkew(why) => {
            assert!(why.contains("ahead of the state store's"), "{why}");
            assert!(why.contains("lock.skew_margin"), "{why}");
        }
        other => panic!("a clock 5 min ahead must be refused: {other:?}"),
    }
    assert!(
        store
            .read()
            .await
            .unwrap()
            .lock
            .is_none_or(|l| !l.in_progress),
        "the refused host wrote no lock"
    );
    assert!(
        matches!(
            client(system, "correct").acquire().await.unwrap(),
            Acquired::Held(_)
        ),
        "a correct clock takes the lock"
    );
}
