//! `StateStore`: the lock and the durable operation record (docs/architecture.md §4).

use super::error::PortResult;
use super::time::Timestamp;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The lock item as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    pub in_progress: bool,
    /// `host:pid:mode:uuid`, unique per process run.
    pub owner: String,
    /// Unique per acquisition.
    pub lease_id: String,
    /// Incremented on every acquisition (and on break-glass); never reused.
    pub fence: u64,
    pub until: Timestamp,
    pub lease_ms: u64,
}

impl LockRecord {
    /// Held by someone whose lease has not run out, judged at `now`.
    pub fn is_held_at(&self, now: Timestamp) -> bool {
        self.in_progress && self.until >= now
    }
}

/// Proof of holding the lock, carried on every fenced write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: String,
    pub lease_id: String,
    pub fence: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcquireRequest {
    pub owner: String,
    /// Chosen by the caller so that an unknown outcome can be resolved by
    /// reading the lock back and comparing lease ids.
    pub lease_id: String,
    pub now: Timestamp,
    pub lease: Duration,
    /// Another holder's lease counts as expired only this long after its end.
    pub skew_margin: Duration,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpPhase {
    LaunchIntended,
    Launched,
    Verifying,
    CordonIntended,
    Draining,
    TerminateIntended,
    Done,
    Failed,
    Aborted,
}

impl OpPhase {
    /// A phase that records a decision not yet acted on: it expires.
    pub fn is_intent(self) -> bool {
        matches!(
            self,
            OpPhase::LaunchIntended | OpPhase::CordonIntended | OpPhase::TerminateIntended
        )
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, OpPhase::Done | OpPhase::Failed | OpPhase::Aborted)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OpPhase::LaunchIntended => "LaunchIntended",
            OpPhase::Launched => "Launched",
            OpPhase::Verifying => "Verifying",
            OpPhase::CordonIntended => "CordonIntended",
            OpPhase::Draining => "Draining",
            OpPhase::TerminateIntended => "TerminateIntended",
            OpPhase::Done => "Done",
            OpPhase::Failed => "Failed",
            OpPhase::Aborted => "Aborted",
        }
    }

    pub fn parse(s: &str) -> Option<OpPhase> {
        [
            OpPhase::LaunchIntended,
            OpPhase::Launched,
            OpPhase::Verifying,
            OpPhase::CordonIntended,
            OpPhase::Draining,
            OpPhase::TerminateIntended,
            OpPhase::Done,
            OpPhase::Failed,
            OpPhase::Aborted,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

impl std::fmt::Display for OpPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one attempt of a launch goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchTarget {
    pub instance_type: String,
    pub subnet: Option<String>,
}

impl std::fmt::Display for LaunchTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.subnet {
            Some(subnet) => write!(f, "{} in {subnet}", self.instance_type),
            None => f.write_str(&self.instance_type),
        }
    }
}

/// A scale-up's launch, recorded (fenced) before anything is sent: every
/// target in the order it is tried (each subnet, then the next instance
/// type), which one is current, and what the earlier ones answered. A
/// retry re-sends exactly the current attempt with its token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchPlan {
    pub targets: Vec<LaunchTarget>,
    pub attempt: usize,
    pub master_address: String,
    pub refusals: Vec<String>,
    /// The K3s release every attempt installs (pinned when planned).
    #[serde(default)]
    pub k3s_version: String,
}

impl LaunchPlan {
    pub fn current(&self) -> Option<&LaunchTarget> {
        self.targets.get(self.attempt)
    }

    /// The attempt's ClientToken: the operation's token and the attempt
    /// number (`k3sa-op-3f9a1c2b-0`, 18 characters; EC2 allows 64).
    pub fn token(&self, base: &str) -> String {
        format!("{base}-{}", self.attempt)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OpKind {
    ScaleUp {
        count: u32,
        client_token: String,
        instance_ids: Vec<String>,
        /// Recorded before the first `RunInstances`; `None` until then.
        #[serde(default)]
        plan: Option<LaunchPlan>,
    },
    ScaleDown {
        node: String,
        instance_id: Option<String>,
    },
    /// An operator's cordon or uncordon of one node, fenced like any change.
    Cordon { node: String, cordon: bool },
    /// Clean-up: terminate managed instances outside any operation (never
    /// joined, or orphaned).
    TerminateStrays {
        instances: Vec<String>,
        /// Of those, the ones found with a node outside the worker selector
        /// (their labels changed, or the selector is wrong): never
        /// terminated, and not chosen again as strays while this record is
        /// the last one.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        kept: Vec<String>,
    },
    /// Clean-up: delete a node object whose instance is gone.
    DeleteGhost { node: String },
}

impl OpKind {
    pub fn name(&self) -> &'static str {
        match self {
            OpKind::ScaleUp { .. } => "scale-up",
            OpKind::ScaleDown { .. } => "scale-down",
            OpKind::Cordon { cordon: true, .. } => "cordon",
            OpKind::Cordon { cordon: false, .. } => "uncordon",
            OpKind::TerminateStrays { .. } => "terminate-strays",
            OpKind::DeleteGhost { .. } => "delete-ghost",
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Started by the engine in `--auto` mode.
    Engine,
    /// Confirmed by an operator in the console.
    Operator,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpStep {
    pub at: Timestamp,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub id: String,
    pub kind: OpKind,
    pub phase: OpPhase,
    pub origin: Origin,
    /// Why it was started: the decision's reasons.
    pub reasons: Vec<String>,
    pub started: Timestamp,
    pub updated: Timestamp,
    /// Join deadline (scale-up) or drain deadline (scale-down).
    pub deadline: Option<Timestamp>,
    pub steps: Vec<OpStep>,
    /// Why it ended, for Failed/Aborted (and a note for Done).
    pub outcome: Option<String>,
    /// Fence of the lock holder that wrote this version.
    pub fence: u64,
    /// Scale-ups in a row that ended Failed before this operation started
    /// (other operations between them do not break the row; a scale-up
    /// that ends Done does): the back-off after a failure doubles with each.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_before: u32,
    /// When the last of those failures ended: the back-off runs from it,
    /// whatever operations came after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<Timestamp>,
    /// What went wrong within the circuit breaker's window before and
    /// during this operation (engine/circuit.rs), carried from operation
    /// to operation like the failure row, so that every engine, and one
    /// that takes over after a crash, counts the same history.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub troubles: Vec<Trouble>,
    /// A scale-up's oldest triggering pod's `PodScheduled=False` time, as
    /// the fresh observation it was started on saw it: `started` minus this
    /// is the scale-up latency (`engine/latency.rs`), kept in the record so
    /// that `status`, which has no memory, can tell it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_since: Option<Timestamp>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One thing that went wrong, remembered for the circuit breaker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trouble {
    pub at: Timestamp,
    pub kind: TroubleKind,
    /// The instance (never joined) or the operation (failed, aborted).
    pub subject: String,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TroubleKind {
    /// An instance this tool launched, terminated by the engine's clean-up
    /// because it never became a Ready node.
    NeverJoined,
    /// An operation that ended Failed.
    Failed,
    /// An operation that ended Aborted (an intent that expired, a drain
    /// given up).
    Aborted,
}

impl Operation {
    pub fn is_in_flight(&self) -> bool {
        !self.phase.is_terminal()
    }
}

/// The operation item: the current (or last) operation and the cooldown clocks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpRecord {
    /// Bumped on every write; writes are conditioned on the previous value.
    pub rev: u64,
    pub op: Option<Operation>,
    /// When the last scale-up was verified (scale-up cooldown starts here).
    pub last_scale_up: Option<Timestamp>,
    /// When the last scale operation of either kind ended (scale-down cooldown).
    pub last_scale_end: Option<Timestamp>,
    /// A cluster-wide pause (`k3s-autoscaler pause`): while it lasts, no
    /// engine starts or advances an operation.
    #[serde(default)]
    pub pause: Option<Pause>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub by: String,
    pub reason: String,
    pub since: Timestamp,
    pub until: Timestamp,
    /// Set by the circuit breaker (engine/circuit.rs), not by a person:
    /// the clean-up of launches that never joined goes on under it, since
    /// it undoes what opened the circuit; nothing else starts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub circuit: bool,
}

impl OpRecord {
    pub fn in_flight(&self) -> Option<&Operation> {
        self.op.as_ref().filter(|o| o.is_in_flight())
    }

    pub fn phase(&self) -> Option<OpPhase> {
        self.op.as_ref().map(|o| o.phase)
    }

    /// The pause in force at `now`, if any (an expired one is not).
    pub fn paused_at(&self, now: Timestamp) -> Option<&Pause> {
        self.pause.as_ref().filter(|p| p.until > now)
    }

    /// The circuit breaker's pause, when the write from `before` to this
    /// record is the one that opened it.
    pub fn circuit_opened_since(&self, before: &OpRecord) -> Option<&Pause> {
        self.pause
            .as_ref()
            .filter(|p| p.circuit && self.pause != before.pause)
    }

    /// The pause in force at `now` that stops this work, if any. Every
    /// pause stops everything, except that the circuit breaker's lets the
    /// engine's clean-up of instances that never joined start and advance
    /// (`clean_up`: the work is that and only that); an operator's pause
    /// stops even that.
    pub fn pause_stopping(&self, now: Timestamp, clean_up: bool) -> Option<&Pause> {
        self.paused_at(now).filter(|p| !(p.circuit && clean_up))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSnapshot {
    pub lock: Option<LockRecord>,
    pub record: OpRecord,
}

/// Who broke the glass and why; recorded with the forced release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakGlass {
    pub who: String,
    pub reason: String,
    pub now: Timestamp,
}

/// One reading of the store's clock against ours: our wall clock just
/// before a request was sent and just after its answer came, and the
/// time the service stamped on the answer (HTTP `Date`, whole seconds).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ClockSample {
    pub sent: Timestamp,
    pub received: Timestamp,
    pub server: Timestamp,
}

impl ClockSample {
    /// Bounds on (the service's clock − ours), in milliseconds: the answer
    /// was stamped between `sent` and `received` by our clock, with a time
    /// truncated to the second.
    pub fn skew_bounds(&self) -> (i64, i64) {
        (
            self.server.0 - self.received.0,
            self.server.0 + 1000 - self.sent.0,
        )
    }
}

#[async_trait]
pub trait StateStore: Send + Sync {
    /// Strongly consistent read of the lock and the operation item.
    async fn read(&self) -> PortResult<StateSnapshot>;
    /// Conditional acquire (docs/architecture.md §4). `Ok(Some)` with the new lock when
    /// taken; `Ok(None)` when someone else holds it.
    async fn acquire(&self, request: &AcquireRequest) -> PortResult<Option<LockRecord>>;
    /// Extend our lease; `PreconditionFailed` when it is no longer ours.
    async fn renew(&self, lease: &Lease, now: Timestamp, duration: Duration) -> PortResult<()>;
    async fn release(&self, lease: &Lease) -> PortResult<()>;
    /// Fenced write of the operation item: applies only while `lease` holds
    /// the lock and the stored record is still `previous` (same revision,
    /// same phase).
    async fn write_op(&self, lease: &Lease, previous: &OpRecord, next: &OpRecord)
    -> PortResult<()>;
    /// Break-glass: free the lock whoever holds it and bump the fence so a
    /// stale holder's writes are refused.
    async fn force_unlock(&self, audit: &BreakGlass) -> PortResult<LockRecord>;
    /// Our clock against the store's, from one cheap request; `None` where
    /// the store has no clock of its own to compare with.
    async fn clock_sample(&self, _local: &dyn super::Clock) -> PortResult<Option<ClockSample>> {
        Ok(None)
    }
}
