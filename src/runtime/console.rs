//! The console driver: the one task that owns the terminal. Keys come from
//! an input thread, snapshots from the engine task, both over channels; the
//! screen is redrawn on input, on new data and at most four times a second.

use super::engine_loop::Engine;
use super::shutdown::Shutdown;
use super::terminal;
use crate::app::{App, Command, Effect, Msg, Snapshot, update};
use crate::engine::Request;
use crate::ports::Ports;
use crate::ui::{ViewOptions, view};
use ratatui::crossterm::event::{self, Event};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Redraw at most this often when nothing else happens (countdowns, ages).
const FRAME: Duration = Duration::from_millis(250);
/// How long the engine gets to finish its current step after `q`.
const STOP_GRACE: Duration = Duration::from_secs(10);

pub async fn run(
    mut app: App,
    engine: Engine,
    ports: Ports,
    interval: Duration,
    options: ViewOptions,
    shutdown: Shutdown,
) -> Result<(), String> {
    let mut term = terminal::enter().map_err(|e| format!("cannot open the terminal: {e}"))?;
    let _guard = terminal::Guard;

    let (command_tx, command_rx) = mpsc::channel::<Command>(16);
    let (snapshot_tx, mut snapshot_rx) = mpsc::channel::<Box<Snapshot>>(4);
    let engine_task = tokio::spawn(engine_task(
        engine,
        ports.clone(),
        interval,
        command_rx,
        snapshot_tx,
        shutdown.clone(),
    ));
    let (input_tx, mut input_rx) = mpsc::channel::<Event>(64);
    let input_stop = Arc::new(AtomicBool::new(false));
    let input_thread = spawn_input_thread(input_tx, input_stop.clone());

    let mut frame_timer = tokio::time::interval(FRAME);
    frame_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let result = loop {
        tui_logger::move_events();
        if let Err(e) = term.draw(|frame| view(frame, &app, options)) {
            break Err(format!("drawing failed: {e}"));
        }
        let msg = tokio::select! {
            biased;
            _ = shutdown.wait() => break Ok(()),
            event = input_rx.recv() => match event {
                Some(Event::Key(key)) => Some(Msg::Key(key)),
                Some(_) => None, // resize and friends: just redraw
                None if shutdown.is_requested() => break Ok(()),
                None => break Err("the keyboard input stopped".into()),
            },
            snapshot = snapshot_rx.recv() => match snapshot {
                Some(s) => Some(Msg::Snapshot(s)),
                None if shutdown.is_requested() => break Ok(()),
                None => break Err("the engine task stopped".into()),
            },
            _ = frame_timer.tick() => Some(Msg::Now(ports.clock.now())),
        };
        let Some(msg) = msg else { continue };
        let mut quit = false;
        for effect in update(&mut app, msg) {
            match effect {
                Effect::Quit => quit = true,
                Effect::Engine(command) => {
                    let _ = command_tx.try_send(command);
                }
            }
        }
        if quit {
            break Ok(());
        }
    };

    // Let the engine finish its current step and release the lock.
    shutdown.request();
    input_stop.store(true, Ordering::SeqCst);
    if tokio::time::timeout(STOP_GRACE, engine_task).await.is_err() {
        tracing::warn!(target: "runtime", "engine did not stop within {STOP_GRACE:?}; exiting anyway");
    }
    let _ = input_thread.join();
    terminal::restore();
    result
}

fn spawn_input_thread(
    tx: mpsc::Sender<Event>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        // A signal (SIGTERM, SIGWINCH) interrupts the poll: not an error.
        let interrupted = |e: &std::io::Error| e.kind() == std::io::ErrorKind::Interrupted;
        while !stop.load(Ordering::SeqCst) {
            // Poll with a timeout so the thread notices `stop`.
            match event::poll(Duration::from_millis(100)) {
                Ok(true) => match event::read() {
                    Ok(ev) => {
                        if tx.blocking_send(ev).is_err() {
                            return;
                        }
                    }
                    Err(e) if interrupted(&e) => {}
                    Err(_) => return,
                },
                Ok(false) => {}
                Err(e) if interrupted(&e) => {}
                Err(_) => return,
            }
        }
    })
}

/// Ticks every `interval`, and at once on an operator command; sends an
/// owned snapshot after each tick.
pub async fn engine_task(
    mut engine: Engine,
    ports: Ports,
    interval: Duration,
    mut commands: mpsc::Receiver<Command>,
    snapshots: mpsc::Sender<Box<Snapshot>>,
    shutdown: Shutdown,
) {
    let mut operator: Option<Request> = None;
    loop {
        if shutdown.is_requested() {
            break;
        }
        let report = engine.tick(operator.take(), &shutdown).await;
        let node_cpu = ports.metrics.node_cpu().await.map_err(|e| e.to_string());
        let snapshot = Snapshot::build(
            report,
            node_cpu,
            engine.mode,
            engine.paused,
            engine.owner().map(String::from),
        );
        if snapshots.send(Box::new(snapshot)).await.is_err() {
            break;
        }
        tokio::select! {
            _ = engine.until_next_tick(interval) => {}
            command = commands.recv() => match command {
                None => break,
                Some(Command::Operator(request)) => operator = Some(request),
                Some(Command::SetMode(mode)) => {
                    engine.set_mode(mode);
                    tracing::info!(target: "runtime", "mode switched to {}", mode.badge());
                }
                Some(Command::Pause(paused)) => {
                    engine.paused = paused;
                    tracing::info!(target: "runtime", "engine {}", if paused { "paused" } else { "resumed" });
                }
                Some(Command::ClusterPause(pause)) => {
                    let who = format!("console:{}", super::backends::operator_identity());
                    let reason = "paused from the console".to_string();
                    let rules = engine.settings().lease.clone();
                    let change = pause.map(|d| (d, reason));
                    match super::pause::set_pause(ports.state.clone(), ports.clock.clone(), &rules, &who, change).await {
                        Ok(_) => tracing::warn!(target: "audit", who = %who, "cluster {}", if pause.is_some() { "paused for 30m" } else { "resumed" }),
                        Err(e) => tracing::error!(target: "runtime", "cluster pause: {e}"),
                    }
                }
                Some(Command::Refresh) => {}
            },
            _ = shutdown.wait() => break,
        }
    }
}
