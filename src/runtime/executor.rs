//! Performs the engine's operation steps under the lock: take it, re-read
//! the world, start or adopt the operation, advance it as far as it can go
//! this tick (fenced writes, side effects only inside the lease), give the
//! lock back.

use super::lease::{Acquired, LockClient};
use super::observe::observe_fresh;
use super::shutdown::Shutdown;
use crate::engine::operation::{self, Effect, EffectResult, Intent, Next, SanityHold};
use crate::engine::{ExecFailure, ExecReport, HeldLease, PolicyMemory, Request, Settings};
use crate::ports::{Node, OpKind, OpRecord, PortError, Ports};
use std::collections::BTreeSet;
use tracing::{debug, info, warn};

mod fresh_intent;
mod view_check;

use view_check::ViewVerdict;

/// Safety net against an engine bug that would loop within one tick.
const MAX_STEPS_PER_TICK: usize = 500;

/// What the tick asks the executor to start, if nothing is in flight.
#[derive(Clone, Debug)]
pub enum StartRequest {
    /// The engine's own decision (auto mode): re-decided on fresh data.
    Engine { memory: PolicyMemory },
    /// An operator's confirmed request: re-validated on fresh data.
    Operator(Request),
}

/// Whether the work is only the clean-up an open circuit lets run
/// (engine/circuit.rs): the operation in flight, if any, is a clean-up,
/// and what starts is one. An engine start qualifies because it is decided
/// again under the lock, and `decide` offers nothing else while the
/// circuit is open; an operator's request must be one.
pub fn start_request_is_clean_up(start: &Option<StartRequest>, record: &OpRecord) -> bool {
    let in_flight = record.in_flight();
    let in_flight_is_clean_up =
        in_flight.is_none_or(|o| matches!(o.kind, OpKind::TerminateStrays { .. }));
    in_flight_is_clean_up
        && match start {
            Some(StartRequest::Engine { .. }) => true,
            Some(StartRequest::Operator(request)) => request.is_clean_up(),
            None => in_flight.is_some(),
        }
}

pub struct Executor {
    ports: Ports,
    settings: Settings,
    lock: LockClient,
    ids: std::sync::Arc<super::ids::IdSource>,
    /// Shared with the engine that owns this executor (`--metrics-addr`).
    pub(crate) metrics: std::sync::Arc<super::metrics::EngineMetrics>,
    /// The operation whose step this engine holds on an implausible view,
    /// and since when (engine/operation/sanity_hold.rs).
    held: std::sync::Mutex<Option<(String, crate::ports::Timestamp)>>,
    /// Tells of this engine's writes (`[notify]`), each once: its writer.
    pub(crate) notifier: Option<super::notify::Notifier>,
    /// Kubernetes Events of this engine's writes and effects.
    pub(crate) events: Option<super::events::EventRecorder>,
}

impl Executor {
    pub fn new(
        ports: Ports,
        settings: Settings,
        lock: LockClient,
        ids: std::sync::Arc<super::ids::IdSource>,
    ) -> Self {
        Executor {
            ports,
            settings,
            lock,
            ids,
            metrics: Default::default(),
            held: Default::default(),
            notifier: None,
            events: None,
        }
    }

    pub fn owner(&self) -> &str {
        self.lock.owner()
    }

    /// Compare the clock with the state store's now (start-up); the
    /// refusal, when it is too far off, is also logged.
    pub async fn check_clock(&self) -> Option<String> {
        self.lock.check_clock().await
    }

    pub async fn run(&self, start: Option<StartRequest>, shutdown: &Shutdown) -> ExecReport {
        let mut report = ExecReport::default();
        let mut held = match self.lock.acquire().await {
            Ok(Acquired::Held(held)) => held,
            Ok(Acquired::ClockSkew(why)) => {
                let failure = fail("clock", None, why);
                warn!(target: "engine", backend = failure.backend, "{failure}");
                report.error = Some(failure);
                return report;
            }
            Ok(Acquired::Busy(holder)) => {
                report.busy_holder = holder.filter(|l| l.in_progress).map(|l| l.owner);
                report.stopped = Some(match &report.busy_holder {
                    Some(owner) => format!("lock held by {owner}"),
                    None => "lock not available".into(),
                });
                return report;
            }
            Err(e) => {
                let failure = fail("dynamodb", None, format!("acquiring the lock: {e}"));
                warn!(target: "engine", backend = failure.backend, "{failure}");
                report.error = Some(failure);
                return report;
            }
        };
        report.lock_taken = true;
        self.metrics.lock_acquired();
        debug!(target: "lock", fence = held.lease.fence, owner = %held.lease.owner, "lock acquired");
        if let Err(failure) = self.work(&mut held, start, shutdown, &mut report).await {
            // Never silent: the service's own words, with the operation.
            match &failure.op_id {
                Some(op_id) => {
                    warn!(target: "engine", op_id = %op_id, backend = failure.backend, "operation cannot advance: {}", failure.message)
                }
                None => {
                    warn!(target: "engine", backend = failure.backend, "operation cannot start: {}", failure.message)
                }
            }
            report.error = Some(failure);
        }
        self.lock.release(&held).await;
        self.metrics.lock_released();
        debug!(target: "lock", fence = held.lease.fence, "lock released");
        report
    }

    async fn work(
        &self,
        held: &mut HeldLease,
        start: Option<StartRequest>,
        shutdown: &Shutdown,
        report: &mut ExecReport,
    ) -> Result<(), ExecFailure> {
        // Re-read after acquiring: never act on what was seen before.
        let mut record = self
            .ports
            .state
            .read()
            .await
            .map_err(|e| {
                fail(
                    "dynamodb",
                    None,
                    format!("reading the operation record: {e}"),
                )
            })?
            .record;
        // A pause written since this tick looked is honoured now, before
        // anything starts or advances.
        let now = self.ports.clock.now();
        if let Some(pause) = record.pause_stopping(now, start_request_is_clean_up(&start, &record))
        {
            let why = crate::engine::policy::pause_reason(pause, now);
            if start.is_some() {
                report.refused = Some(why.clone());
            }
            info!(target: "engine", "not acting: {why}");
            report.stopped = Some(why);
            return Ok(());
        }
        if let Some(StartRequest::Operator(Request::CloseOperation(id))) = &start {
            // Closing an operation is a write to it, not a new one; checked
            // again on fresh data like everything else.
            let now = self.ports.clock.now();
            let obs = observe_fresh(&self.ports, now).await;
            let gone = crate::engine::reconcile::reconcile(&self.settings, &obs, &record, now)
                .into_iter()
                .any(|f| matches!(f, crate::engine::reconcile::Finding::OperationInstancesGone { op_id, .. } if &op_id == id));
            match (
                gone,
                operation::close(
                    &self.settings,
                    &record,
                    "its instances are gone",
                    held.lease.fence,
                    now,
                ),
            ) {
                (true, Some(Next::Write(next))) => {
                    self.write(held, &mut record, *next, report).await?;
                    info!(target: "engine", op_id = %id, "closed by the operator");
                }
                _ => {
                    report.refused = Some(format!(
                        "{id} is not an operation in flight whose instances are all gone"
                    ))
                }
            }
            return Ok(());
        }
        if let Some(start) = start {
            if let Some(op) = record.in_flight() {
                report.refused = Some(format!(
                    "{} {} already in flight; adopting it",
                    op.kind.name(),
                    op.id
                ));
            } else if !shutdown.is_requested() {
                match self.fresh_intent(&record, start).await {
                    Ok((intent, origin, reasons, pending_since)) => {
                        let op_id = self.ids.op_id();
                        let now = self.ports.clock.now();
                        let mut next = operation::start(
                            &record,
                            &intent,
                            &op_id,
                            origin,
                            reasons,
                            held.lease.fence,
                            now,
                        );
                        if let Some(op) = next.op.as_mut()
                            && matches!(intent, Intent::ScaleUp { .. })
                        {
                            op.pending_since = pending_since;
                        }
                        self.write(held, &mut record, next, report).await?;
                        if let Some(began) =
                            pending_since.filter(|_| matches!(intent, Intent::ScaleUp { .. }))
                        {
                            // The launch is this run's: RunInstances follows
                            // in the advance below.
                            let waited = now.since(began);
                            self.metrics.record_scale_up_latency(waited);
                            info!(target: "engine", op_id = %op_id, scale_up_latency_ms = waited.as_millis() as u64, "oldest triggering pod unschedulable for {}", crate::ports::format_duration(waited));
                        }
                        info!(target: "engine", op_id = %op_id, origin = ?origin, "started {}", intent.label());
                        report.started = Some(op_id);
                        report.started_intent = Some(intent);
                    }
                    Err(why) => {
                        info!(target: "engine", "not starting: {why}");
                        report.refused = Some(why);
                    }
                }
            }
        }
        let started_here = report.started.is_some();
        self.advance(held, &mut record, started_here, shutdown, report)
            .await
    }

    async fn write(
        &self,
        held: &HeldLease,
        record: &mut OpRecord,
        next: OpRecord,
        report: &mut ExecReport,
    ) -> Result<(), ExecFailure> {
        let op_id = next.op.as_ref().map(|o| o.id.as_str());
        match self.ports.state.write_op(&held.lease, record, &next).await {
            Ok(()) => {}
            // Unknown: did it apply? A refused condition can also be our own
            // earlier attempt that did apply (an SDK retry after a lost
            // response). Only a consistent read tells.
            Err(e @ (PortError::OutcomeUnknown(_) | PortError::PreconditionFailed(_))) => {
                let stored = self
                    .ports
                    .state
                    .read()
                    .await
                    .map_err(|read| {
                        fail(
                            "dynamodb",
                            op_id,
                            format!("write not confirmed ({e}) and read-back failed: {read}"),
                        )
                    })?
                    .record;
                if stored != next {
                    return Err(fail(
                        "dynamodb",
                        op_id,
                        format!("fenced write did not apply: {e}"),
                    ));
                }
                info!(target: "engine", "write had applied despite: {e}");
            }
            Err(e) => {
                return Err(fail(
                    "dynamodb",
                    op_id,
                    format!("fenced write refused: {e}"),
                ));
            }
        }
        self.metrics.record_write(record, &next);
        if let Some(notifier) = &self.notifier {
            let now = self.ports.clock.now();
            for notice in super::notify::notices::of_write(record, &next, now) {
                notifier.send(notice);
            }
        }
        if let Some(events) = &self.events {
            let now = self.ports.clock.now();
            events.tell(now, crate::engine::events::of_write(record, &next));
        }
        if let Some(pause) = next.circuit_opened_since(record) {
            warn!(target: "engine", until = %pause.until, "circuit breaker opened, the cluster is paused until resumed: {}", pause.reason);
        }
        let intent = next.op.as_ref().is_some_and(|o| {
            matches!(
                o.phase,
                crate::ports::OpPhase::LaunchIntended | crate::ports::OpPhase::CordonIntended
            )
        });
        if let Some(op) = &next.op {
            let step = op.steps.last().map(|s| s.text.clone()).unwrap_or_default();
            info!(target: "engine", op_id = %op.id, phase = %op.phase, fence = held.lease.fence, "{} {}: {step}", op.kind.name(), op.id);
            report
                .steps
                .push(format!("{} → {}: {step}", op.id, op.phase));
        }
        *record = next;
        if intent {
            super::failpoint::hit(super::failpoint::AFTER_INTENT);
        }
        Ok(())
    }

    async fn advance(
        &self,
        held: &mut HeldLease,
        record: &mut OpRecord,
        started_here: bool,
        shutdown: &Shutdown,
        report: &mut ExecReport,
    ) -> Result<(), ExecFailure> {
        let mut tried: BTreeSet<String> = BTreeSet::new();
        let mut pending: Option<Next> = None;
        // This run recorded the intent in force and has sent nothing for it
        // since: on shutdown it is this run's to close.
        let mut own_intent = started_here;
        // The node list the step in hand was decided on (the sanity check
        // judges it, not only a later read), and whether this tick already
        // decided a step again because that list was implausible.
        let mut decided_on: Option<Vec<Node>> = None;
        let mut decided_again = false;
        for _ in 0..MAX_STEPS_PER_TICK {
            let op_id = record.in_flight().map(|o| o.id.clone());
            if let Err(e) = self.lock.keep(held).await {
                self.metrics.lock_lost();
                return Err(fail(
                    "dynamodb",
                    op_id.as_deref(),
                    format!("lease renewal failed: {e}; stopping before any further step"),
                ));
            }
            let fence = held.lease.fence;
            // `decided_at`: this step comes from `next` on a fresh view, at
            // that time (not a follow-up of an effect just performed, such
            // as the node deletion after a terminate, which must not be
            // dropped).
            let (next, decided_at) = match pending.take() {
                Some(next) => (next, None),
                None => {
                    let Some(op) = record.in_flight() else {
                        return Ok(());
                    };
                    let mut world =
                        super::op_reads::view_for(&self.ports, &self.settings, op).await?;
                    // The reads may have been slow: judge the intent's age
                    // (and every deadline) at the time they returned.
                    let now = self.ports.clock.now();
                    let next =
                        operation::next(&self.settings, record, &world.view(&tried), fence, now);
                    decided_on = world.take_nodes();
                    (next, Some(now))
                }
            };
            match next {
                Next::Idle => return Ok(()),
                Next::Wait(why) => {
                    info!(target: "engine", "{why}");
                    report.stopped = Some(why);
                    return Ok(());
                }
                Next::Continue => {}
                Next::Write(next) => {
                    own_intent = next.in_flight().is_some_and(|o| o.phase.is_intent())
                        && (own_intent || next.phase() != record.phase());
                    self.write(held, record, *next, report).await?
                }
                Next::Act(effect) => {
                    if shutdown.is_requested() {
                        report.stopped = Some("shutting down: no new step started".into());
                        if own_intent {
                            let now = self.ports.clock.now();
                            if let Some(Next::Write(aborted)) = operation::abandon(
                                record,
                                "the engine is shutting down",
                                held.lease.fence,
                                now,
                            ) {
                                self.write(held, record, *aborted, report).await?;
                            }
                        }
                        return Ok(());
                    }
                    // A terminate or a node deletion rests on the node list
                    // being this fleet's: on an implausible one (another
                    // cluster's API server, an empty list) the step waits a
                    // while, then is given up without the call
                    // (engine/operation/sanity_hold.rs). Judged on the list
                    // the step was decided on and on a fresh one: a spell
                    // that ended between the two reads must not let a step
                    // decided inside it go ahead. Decided inside it, but
                    // plausible now: decided again (once a tick).
                    let mut refused = None;
                    let verdict = match &effect {
                        Effect::Terminate { ids, .. } => {
                            self.judge_view(op_id.as_deref(), decided_on.as_deref(), ids)
                                .await?
                        }
                        Effect::DeleteNode { .. } => {
                            self.judge_view(op_id.as_deref(), decided_on.as_deref(), &[])
                                .await?
                        }
                        _ => ViewVerdict::Plausible,
                    };
                    if let ViewVerdict::DecidedOnImplausible(why) = &verdict
                        && decided_at.is_some()
                        && !decided_again
                    {
                        decided_again = true;
                        info!(target: "engine", "{} was decided on an implausible node list ({why}); the list is plausible now: deciding again", effect.describe());
                        continue;
                    }
                    if let ViewVerdict::DecidedOnImplausible(why) | ViewVerdict::Implausible(why) =
                        verdict
                    {
                        let now = self.ports.clock.now();
                        let held_since = self.held_since(op_id.as_deref(), now);
                        match operation::on_implausible_view(
                            &self.settings,
                            record,
                            &effect,
                            &why,
                            held_since,
                            now,
                        ) {
                            Some(SanityHold::Wait(text)) => {
                                warn!(target: "engine", "{text}");
                                report.stopped = Some(text);
                                return Ok(());
                            }
                            Some(SanityHold::Refuse(e)) => refused = Some(e),
                            None => {}
                        }
                    }
                    if let Some(e) = refused {
                        let result = EffectResult::Err(e);
                        pending =
                            Some(self.settle(record, &effect, result, fence, &mut tried, report));
                        continue;
                    }
                    // The reads since the loop's renew may have been slow:
                    // renew again if too little is left for this effect.
                    if let Err(e) = self.lock.keep(held).await {
                        self.metrics.lock_lost();
                        return Err(fail(
                            "dynamodb",
                            op_id.as_deref(),
                            format!(
                                "lease renewal failed: {e}; not starting {}",
                                effect.describe()
                            ),
                        ));
                    }
                    if effect.is_destructive()
                        && let Err(e) = self.lock.confirm(held).await
                    {
                        self.metrics.lock_lost();
                        return Err(fail(
                            "dynamodb",
                            op_id.as_deref(),
                            format!(
                                "the lease could not be confirmed right before {} ({e}); not done",
                                effect.describe()
                            ),
                        ));
                    }
                    // Those renewals may have been slow too: an intent that
                    // was fresh when this step was decided and aged past its
                    // bound since is decided again (the next step aborts
                    // it), never acted on. One already past it when decided
                    // was judged by `next` itself (an abort, or the end of a
                    // step whose effect went out): that one goes ahead.
                    let ttl = self.settings.intent_ttl();
                    if let Some(decided_at) = decided_at
                        && !effect.is_undo()
                        && let Some(op) = record.in_flight()
                        && op.phase.is_intent()
                        && decided_at.since(op.updated) <= ttl
                        && self.ports.clock.now().since(op.updated) > ttl
                    {
                        continue;
                    }
                    if !self.lock.may_act(held) {
                        self.metrics.lock_lost();
                        report.stopped =
                            Some("lease deadline reached: no side effect after it".into());
                        warn!(target: "lock", "lease deadline reached before {}", effect.describe());
                        return Ok(());
                    }
                    own_intent = false;
                    let mut result = super::effects::perform(&self.ports, &effect).await;
                    super::effects::failpoint_after(&effect, &result);
                    if let (Effect::Untaint { nodes }, EffectResult::Ok) = (&effect, &result) {
                        let now = self.ports.clock.now();
                        for n in decided_on.iter().flatten() {
                            if n.ready && nodes.contains(&n.name) {
                                let waited = now.since(n.ready_since);
                                self.metrics.record_verify_latency(waited);
                                // One line per sample, for a study of the
                                // figures (scripts/latency_study.sh).
                                info!(target: "engine", op_id = op_id.as_deref().unwrap_or(""), node = %n.name, verify_latency_ms = waited.as_millis() as u64, "verified");
                            }
                        }
                    }
                    // "No such node" ends an uncordon as done, but a 404
                    // from another cluster's API server says nothing of
                    // ours: on an implausible view it is a refusal, and the
                    // operation says the node may be left cordoned.
                    // A cordon's 404 there is no "node gone" either: it is
                    // retried next tick (the node may already be cordoned,
                    // by this operation's first attempt).
                    if let Effect::Cordon { node } = &effect
                        && matches!(result, EffectResult::Err(PortError::NotFound(_)))
                        && let ViewVerdict::DecidedOnImplausible(why)
                        | ViewVerdict::Implausible(why) = self
                            .judge_view(op_id.as_deref(), decided_on.as_deref(), &[])
                            .await?
                    {
                        result = EffectResult::Err(PortError::Unavailable(format!(
                            "404 for {node} while the view is implausible ({why})"
                        )));
                    }
                    if matches!(effect, Effect::Uncordon { .. })
                        && matches!(result, EffectResult::Err(PortError::NotFound(_)))
                        && let ViewVerdict::DecidedOnImplausible(why)
                        | ViewVerdict::Implausible(why) = self
                            .judge_view(op_id.as_deref(), decided_on.as_deref(), &[])
                            .await?
                    {
                        let now = self.ports.clock.now();
                        if let Some(SanityHold::Refuse(e)) = operation::on_implausible_view(
                            &self.settings,
                            record,
                            &effect,
                            &why,
                            None,
                            now,
                        ) {
                            result = EffectResult::Err(e);
                        }
                    }
                    pending = Some(self.settle(record, &effect, result, fence, &mut tried, report));
                }
            }
        }
        Err(fail(
            "engine",
            record.in_flight().map(|o| o.id.as_str()),
            format!("more than {MAX_STEPS_PER_TICK} steps in one tick; stopping (engine bug?)"),
        ))
    }

    /// An effect's result, performed or refused before the call: logged
    /// and reported, then judged by the operation (`operation::after`).
    fn settle(
        &self,
        record: &OpRecord,
        effect: &Effect,
        result: EffectResult,
        fence: u64,
        tried: &mut BTreeSet<String>,
        report: &mut ExecReport,
    ) -> Next {
        super::effects::note(effect, &result, tried, report);
        let now = self.ports.clock.now();
        if let (Some(events), Some(op)) = (&self.events, record.in_flight()) {
            let gone = matches!(
                result,
                EffectResult::Ok | EffectResult::Err(crate::ports::PortError::NotFound(_))
            );
            events.tell(now, crate::engine::events::of_effect(op, effect, gone));
        }
        operation::after(&self.settings, record, effect, result, fence, now)
    }
}

pub(super) fn fail(backend: &'static str, op_id: Option<&str>, message: String) -> ExecFailure {
    ExecFailure {
        backend,
        op_id: op_id.map(String::from),
        message,
    }
}
