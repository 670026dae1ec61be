//! One engine tick: observe, decide, and (unless read-only or paused) start
//! or advance an operation. Shared by the headless runner and the console.

use super::executor::{Executor, StartRequest, start_request_is_clean_up};
use super::observe::observe;
use super::shutdown::Shutdown;
use crate::engine::{Decision, Mode, PolicyMemory, Reason, Request, Settings, decide};
use crate::engine::{ExecReport, TickReport};
use crate::ports::Ports;
use tracing::info;

/// Timelines a tick's report carries: those booting, then the newest done.
const BOOT_SHOWN: usize = 32;

pub struct Engine {
    ports: Ports,
    settings: Settings,
    memory: PolicyMemory,
    /// `None` in read-only mode: no value that could take the lock exists.
    executor: Option<Executor>,
    pub mode: Mode,
    pub paused: bool,
    metrics: std::sync::Arc<super::metrics::EngineMetrics>,
    console_tails: super::console_tails::ConsoleTails,
    /// `[notify]`: none in read-only mode, which must not page anyone.
    notifier: Option<super::notify::Notifier>,
    tick_notices: super::notify::notices::TickNotices,
    /// Kubernetes Events: none in read-only mode, which writes nothing.
    events: Option<super::events::EventRecorder>,
    /// What this process has seen of its launches' boots.
    boot: crate::engine::boot::BootMemory,
    /// Notified by the cluster's watches when a change should be decided
    /// on before the next interval (`adapters/kube_watch`).
    wake: Option<crate::adapters::kube_watch::Wakes>,
    /// When a pending pod's window ends before the next interval
    /// (`latency::next_window_end`), from the last tick's observation.
    window_ends: Option<crate::ports::Timestamp>,
    /// When the last early tick (a wake's, a window's) was due, in the
    /// clock's milliseconds (`i64::MIN`: none yet). Atomic: the wait
    /// borrows the engine shared while the console's loop holds it.
    last_early: std::sync::atomic::AtomicI64,
}

/// After a wake, how long to wait for the rest of a burst: 200 pods turning
/// unschedulable together are one decision, not 200.
pub const WAKE_DEBOUNCE: std::time::Duration = std::time::Duration::from_secs(1);

/// Between two early ticks in a row (a wake's or a window's).
pub const MIN_EARLY_GAP: std::time::Duration = std::time::Duration::from_secs(3);

/// After a node's wake (`Wakes::now`): enough for the nodes of one launch
/// that turn Ready together to be one tick, short beside the goal of a
/// Ready node verified within 2 s. Such wakes skip `MIN_EARLY_GAP`: they
/// come a few per boot, not a stream.
pub const NODE_WAKE_DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(250);

/// How long after a pending pod's window ends its tick comes.
const WINDOW_SLACK: std::time::Duration = std::time::Duration::from_millis(100);

impl Engine {
    pub fn new(ports: Ports, settings: Settings, executor: Option<Executor>, mode: Mode) -> Self {
        let metrics = std::sync::Arc::new(super::metrics::EngineMetrics::default());
        let executor = if mode == Mode::ReadOnly {
            None
        } else {
            executor.map(|mut e| {
                e.metrics = metrics.clone();
                e
            })
        };
        Engine {
            ports,
            memory: PolicyMemory::default(),
            executor,
            mode,
            paused: false,
            metrics,
            console_tails: Default::default(),
            notifier: None,
            tick_notices: Default::default(),
            events: None,
            boot: crate::engine::boot::BootMemory::new(settings.interval),
            settings,
            wake: None,
            window_ends: None,
            last_early: std::sync::atomic::AtomicI64::new(i64::MIN),
        }
    }

    /// Tick early when the watches see a change — `WAKE_DEBOUNCE` after
    /// `wakes.soon`, `NODE_WAKE_DEBOUNCE` after `wakes.now` — as well as
    /// every interval (time-based rules — windows, cooldowns, deadlines —
    /// still need the interval).
    pub fn set_wake(&mut self, wakes: crate::adapters::kube_watch::Wakes) {
        self.wake = Some(wakes);
    }

    /// Until the next tick is due: `interval`, or a wake and its debounce.
    /// A wake noticed during a tick is kept (`Notify` stores one permit),
    /// so the change it stands for is decided on by the next tick.
    pub async fn until_next_tick(&self, interval: std::time::Duration) {
        let clock = self.ports.clock.clone();
        let Some(wake) = &self.wake else {
            clock.sleep(interval).await;
            return;
        };
        // Event-driven (watches on): a window that ends first is a tick
        // due then (a little after, so the pod is past it when decided
        // on). Polling runs — the simulator's, `--compare`'s — keep their
        // fixed ticks, so their figures stay comparable.
        let window = self
            .window_ends
            .map(|end| end.since(clock.now()) + WINDOW_SLACK)
            .filter(|d| *d < interval);
        let early = tokio::select! {
            _ = clock.sleep(interval) => false,
            _ = wake.now.notified() => {
                self.metrics.record_wake();
                clock.sleep(NODE_WAKE_DEBOUNCE).await;
                self.last_early
                    .store(clock.now().0, std::sync::atomic::Ordering::Relaxed);
                return;
            }
            _ = wake.soon.notified() => {
                self.metrics.record_wake();
                clock.sleep(WAKE_DEBOUNCE).await;
                true
            }
            _ = clock.sleep(window.unwrap_or(interval)), if window.is_some() => true,
        };
        if !early {
            return;
        }
        // Early ticks in a row are `MIN_EARLY_GAP` apart: a flash sale's
        // stream of new pending pods, each a wake, must not become a tick
        // (Prometheus, EC2, DynamoDB reads) every second.
        let now = clock.now();
        let last = self.last_early.load(std::sync::atomic::Ordering::Relaxed);
        if last != i64::MIN {
            let since = now.since(crate::ports::Timestamp(last));
            if since < MIN_EARLY_GAP {
                clock.sleep(MIN_EARLY_GAP - since).await;
            }
        }
        self.last_early
            .store(clock.now().0, std::sync::atomic::Ordering::Relaxed);
    }

    /// Send notices (`[notify]`) from now on: this engine's operation
    /// writes, the circuit closing, new findings. Ignored in read-only mode.
    pub fn set_notifier(&mut self, notifier: super::notify::Notifier) {
        if self.mode == Mode::ReadOnly {
            return;
        }
        self.metrics.set_notify_stats(notifier.stats());
        if let Some(e) = self.executor.as_mut() {
            e.notifier = Some(notifier.clone());
        }
        self.notifier = Some(notifier);
    }

    /// Write Kubernetes Events from now on (`engine/events.rs`): the
    /// pending pods' on every tick, this engine's operations' as it
    /// writes them. Ignored in read-only mode.
    pub fn set_event_recorder(&mut self, events: super::events::EventRecorder) {
        if self.mode == Mode::ReadOnly {
            return;
        }
        self.metrics.set_event_stats(events.stats());
        if let Some(e) = self.executor.as_mut() {
            e.events = Some(events.clone());
        }
        self.events = Some(events);
    }

    /// What `--metrics-addr` serves; updated by every tick.
    pub fn metrics(&self) -> std::sync::Arc<super::metrics::EngineMetrics> {
        self.metrics.clone()
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn owner(&self) -> Option<&str> {
        self.executor.as_ref().map(|e| e.owner())
    }

    /// At start: our clock against the state store's (logged when off).
    pub async fn check_clock(&self) -> Option<String> {
        match &self.executor {
            Some(e) => e.check_clock().await,
            None => None,
        }
    }

    /// Switch between auto and supervised (read-only is fixed at start).
    pub fn set_mode(&mut self, mode: Mode) {
        if self.mode != Mode::ReadOnly && mode != Mode::ReadOnly {
            self.mode = mode;
        }
    }

    pub async fn tick(&mut self, operator: Option<Request>, shutdown: &Shutdown) -> TickReport {
        let now = self.ports.clock.now();
        let (observation, cluster_source) = observe(&self.ports, now).await;
        self.window_ends =
            crate::engine::latency::next_window_end(&self.settings, &observation, now);
        let booted = self.boot.observe(&observation, now);
        self.metrics.record_boots(&booted);
        self.memory.boot_lead = self.boot.typical_boot();
        let state = self.ports.state.read().await.map_err(|e| e.to_string());
        let memory_before = self.memory.clone();
        let decision = match &state {
            Ok(s) => {
                let mut decision = decide(
                    &self.settings,
                    &mut self.memory,
                    &observation,
                    &s.record,
                    now,
                );
                decision.standing = crate::engine::policy::standing(
                    &self.settings,
                    &self.memory,
                    &observation,
                    &s.record,
                    now,
                    &decision,
                );
                decision
            }
            Err(e) => {
                // Sustained conditions restart after a blind tick, but the
                // nodes whose drains did not finish stay passed over (an
                // outage of the store must not send the next scale-down
                // back to a node whose pods cannot leave), and the node
                // count, the demand history and the boot time stay: the
                // store says nothing of them. (The node count was dropped
                // here before; kept, the sanity stop's "halved in one
                // tick" compares with the last tick that saw the nodes,
                // as after a blind tick of the cluster's own.)
                self.memory.after_blind_tick();
                Decision::hold(
                    now,
                    vec![
                        Reason::concern(format!("state table Unknown ({e})")),
                        Reason::concern("Unknown never scales".into()),
                    ],
                )
            }
        };
        let verb = if self.mode == Mode::ReadOnly && !decision.action.is_hold() {
            "would "
        } else {
            ""
        };
        info!(target: "engine", action = %decision.action.label(), "decision: {verb}{}", decision.summary());

        let mut exec = None;
        let operator_absent = operator.is_none();
        if let (Some(executor), Ok(snapshot)) = (&self.executor, &state) {
            let in_flight = snapshot.record.in_flight().is_some();
            let start = match operator {
                Some(request) => Some(StartRequest::Operator(request)),
                None if self.mode == Mode::Auto && !decision.action.is_hold() => {
                    Some(StartRequest::Engine {
                        memory: memory_before,
                    })
                }
                None => None,
            };
            // A cluster-wide pause: nothing starts, nothing in flight
            // advances; under the circuit breaker's, a clean-up may.
            let cluster_pause = snapshot
                .record
                .pause_stopping(now, start_request_is_clean_up(&start, &snapshot.record))
                .map(|p| crate::engine::policy::pause_reason(p, now));
            if let Some(why) = cluster_pause {
                if matches!(start, Some(StartRequest::Operator(_))) {
                    exec = Some(ExecReport {
                        refused: Some(why),
                        ..ExecReport::default()
                    });
                }
            } else if !self.paused && (start.is_some() || in_flight) {
                exec = Some(executor.run(start, shutdown).await);
            } else if self.paused && start.is_some() {
                exec = Some(ExecReport {
                    refused: Some("engine paused: resume it first".into()),
                    ..ExecReport::default()
                });
            }
        }
        if let Some(events) = &self.events {
            use crate::engine::events::{TickStart, of_tick};
            let started = exec
                .as_ref()
                .and_then(|e| e.started.as_deref().zip(e.started_intent.as_ref()));
            let start = match started {
                Some((id, intent)) => TickStart::Started(id, intent),
                None if self.mode == Mode::Supervised && operator_absent => {
                    TickStart::AwaitingConfirmation
                }
                None => TickStart::Nothing,
            };
            events.tell(
                now,
                of_tick(&self.settings, &observation, &decision, start, now),
            );
        }
        let mut findings = match &state {
            Ok(s) => {
                crate::engine::reconcile::reconcile(&self.settings, &observation, &s.record, now)
            }
            Err(_) => Vec::new(),
        };
        self.console_tails
            .fill(self.ports.cloud.as_ref(), &mut findings, now)
            .await;
        if let Some(notifier) = &self.notifier {
            let record = state.as_ref().ok().map(|s| &s.record);
            let looked = observation.cluster.is_ok() && observation.fleet.is_ok();
            let seen = looked.then_some(findings.as_slice());
            for notice in self.tick_notices.observe(record, seen, now) {
                notifier.send(notice);
            }
        }
        let report = TickReport {
            at: now,
            observation,
            decision,
            state,
            exec,
            findings,
            boot: self.boot.timelines().into_iter().take(BOOT_SHOWN).collect(),
            boot_stats: self.boot.stats(),
            cluster_source,
            latency: self.metrics.latency(),
        };
        self.metrics.record_tick(&report);
        report
    }
}
