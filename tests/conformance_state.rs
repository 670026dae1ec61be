//! The `StateStore` conformance suite (DESIGN §1), written once against the
//! trait and run against the simulator and against the DynamoDB adapter on
//! moto's server. Times are passed explicitly, so expiry needs no sleeping.

mod support;

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

fn req(owner: &str, lease_id: &str, now: Timestamp) -> AcquireRequest {
    AcquireRequest {
        owner: owner.into(),
        lease_id: lease_id.into(),
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

async fn sim_store() -> Store {
    let (_, demo) = support::demo(ScenarioKind::Steady, 1, false);
    demo.ports.state.clone()
}

async fn dynamo_store() -> Store {
    let sdk = support::moto_sdk().await;
    let store = DynamoStateStore::new(&sdk, &support::unique("conf-state"), "conformance");
    assert_eq!(store.create_table().await.unwrap(), InitOutcome::Created);
    Arc::new(store)
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod on_simulator {
            use super::*;
            $( #[tokio::test] async fn $case() { cases::$case(sim_store().await).await } )*
        }
        mod on_dynamodb_moto {
            use super::*;
            $( #[tokio::test] async fn $case() { cases::$case(dynamo_store().await).await } )*
        }
    };
}

conformance!(
    empty_table_reads_as_nothing,
    acquire_renew_release,
    an_expired_lease_is_taken_over_after_the_skew_margin,
    a_stale_holder_is_fenced_out,
    fences_strictly_increase,
    a_write_needs_the_expected_revision_and_phase,
    a_write_after_release_is_refused,
    the_record_round_trips_with_cooldowns,
);

#[tokio::test]
async fn init_is_idempotent_and_a_missing_table_says_run_init() {
    let sdk = support::moto_sdk().await;
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
