//! `update(state, msg) -> effects`: every state change of the console.

use super::keymap::{Action, Key};
use super::snapshot::Snapshot;
use super::{App, Confirm, Confirmed, Focus, Notice, Overlay};
use crate::engine::{Action as EngineAction, ExecHeadline, Mode, Request, validate_request};
use crate::ports::{Reading, Timestamp};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind};

#[derive(Debug)]
pub enum Msg {
    Key(KeyEvent),
    /// The clock moved (≤ 4 Hz): ages and countdowns.
    Now(Timestamp),
    Snapshot(Box<Snapshot>),
}

/// What the engine task is asked to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// A confirmed operator request: validated again under the lock.
    Operator(Request),
    SetMode(Mode),
    Pause(bool),
    /// Cluster-wide pause for this long (`None`: resume).
    ClusterPause(Option<std::time::Duration>),
    Refresh,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Engine(Command),
    Quit,
}

pub fn update(app: &mut App, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Now(now) => {
            app.now = now;
            Vec::new()
        }
        Msg::Snapshot(snapshot) => {
            on_snapshot(app, *snapshot);
            Vec::new()
        }
        Msg::Key(key) if key.kind == KeyEventKind::Release => Vec::new(),
        Msg::Key(key) => on_key(app, key),
    }
}

fn notice(app: &mut App, text: impl Into<String>, error: bool) {
    app.notice = Some(Notice {
        text: text.into(),
        error,
        at: app.now,
    });
}

fn on_snapshot(app: &mut App, snapshot: Snapshot) {
    // Refusals and starts are news even while the display is frozen.
    if let Some(exec) = &snapshot.exec {
        match &exec.error {
            Some(failure) => app.last_failure = Some((snapshot.at, failure.clone())),
            None if exec.lock_taken => app.last_failure = None,
            None => {}
        }
        match exec.headline() {
            Some(ExecHeadline::Started(id)) => notice(app, format!("started {id}"), false),
            Some(ExecHeadline::Refused(why)) => notice(app, format!("refused: {why}"), true),
            Some(ExecHeadline::Failed(error)) => {
                notice(app, format!("{} refused: {error}", error.backend), true)
            }
            None => {}
        }
    }
    if let Reading::Known { value, at } = snapshot.observation.cpu {
        app.cpu.push(at, value);
    }
    if let Some(pending) = snapshot.pending_pods() {
        app.pending.push(snapshot.at, pending as f64);
    }
    if app.frozen {
        app.held_back = Some(snapshot);
        return;
    }
    app.snapshot = Some(snapshot);
    if app.selected.is_none() {
        app.selected = super::workers::visible(app).first().map(|r| r.name.clone());
    }
}

fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    match app.overlay {
        Overlay::Confirm(_) => return on_dialog_key(app, key),
        Overlay::Help => {
            app.overlay = Overlay::None;
            return Vec::new();
        }
        Overlay::Reconcile { selected } => return on_recon_key(app, key, selected),
        Overlay::Node { .. } => {
            // Anything that reads as "back" closes it; the rest is ignored,
            // so a key meant for the panels does nothing unseen.
            if matches!(
                key.code,
                KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q') | KeyCode::Char('d')
            ) {
                app.overlay = Overlay::None;
            }
            return Vec::new();
        }
        Overlay::FilterInput | Overlay::None => {}
    }
    if app.overlay.is_filter_input() {
        match key.code {
            KeyCode::Enter => app.overlay = Overlay::None,
            KeyCode::Esc => {
                app.filter.clear();
                app.overlay = Overlay::None;
            }
            KeyCode::Backspace => {
                app.filter.pop();
            }
            KeyCode::Char(c) if !c.is_control() => app.filter.push(c),
            _ => {}
        }
        keep_selection_visible(app);
        return Vec::new();
    }
    let Some(action) = app.keymap.action(&Key::from_event(&key)) else {
        if key.code == KeyCode::Esc {
            app.notice = None;
            app.log_state
                .transition(tui_logger::TuiWidgetEvent::EscapeKey);
        }
        return Vec::new();
    };
    // Defence in depth: the read-only keymap has no dangerous bindings at all.
    if app.read_only && action.is_dangerous() {
        return Vec::new();
    }
    on_action(app, action)
}

fn on_action(app: &mut App, action: Action) -> Vec<Effect> {
    match action {
        Action::Quit => {
            app.quit = true;
            return vec![Effect::Quit];
        }
        Action::Help => app.overlay = Overlay::Help,
        Action::FocusNext => app.focus = app.focus.next(),
        Action::FocusPrev => app.focus = app.focus.prev(),
        Action::Focus(i) => app.focus = Focus::ALL[usize::from(i).min(Focus::ALL.len() - 1)],
        Action::Down => move_selection(app, 1),
        Action::Up => move_selection(app, -1),
        Action::Filter => {
            app.overlay = Overlay::FilterInput;
            app.focus = Focus::Workers;
        }
        Action::Sort => app.sort = app.sort.next(),
        Action::SortReverse => app.sort_reverse = !app.sort_reverse,
        Action::WindowShorter => app.window = app.window.shorter(),
        Action::WindowLonger => app.window = app.window.longer(),
        Action::Freeze => {
            app.frozen = !app.frozen;
            if !app.frozen
                && let Some(held) = app.held_back.take()
            {
                app.snapshot = Some(held);
            }
        }
        Action::Refresh => return vec![Effect::Engine(Command::Refresh)],
        Action::Reconcile => app.overlay = Overlay::Reconcile { selected: 0 },
        Action::Describe => {
            let row = app.selected.as_ref().and_then(|name| {
                super::workers::visible(app)
                    .into_iter()
                    .find(|r| &r.name == name)
                    .map(|r| (r.name.clone(), r.instance_id.clone()))
            });
            match row {
                Some((name, instance_id)) => app.overlay = Overlay::Node { name, instance_id },
                None => notice(
                    app,
                    "select a worker first (j/k in the workers table)",
                    true,
                ),
            }
        }
        Action::ApplySuggestion => {
            let suggestion = app.snapshot.as_ref().map(|s| s.decision.clone());
            match suggestion {
                Some(d) if !d.action.is_hold() => {
                    let reasons = d.reasons.iter().map(|r| r.text.clone()).collect();
                    ask(app, Request::Suggested(d.action), reasons);
                }
                Some(d) => notice(app, format!("nothing to apply: {}", d.summary()), false),
                None => notice(app, "no data yet", false),
            }
        }
        Action::AddWorker => ask(app, Request::AddWorker, vec![]),
        Action::Cordon | Action::Uncordon | Action::RemoveNode => {
            let Some(node) = selected_node(app) else {
                notice(app, "select a node first (j/k in the workers table)", true);
                return Vec::new();
            };
            let request = match action {
                Action::Cordon => Request::Cordon(node),
                Action::Uncordon => Request::Uncordon(node),
                _ => Request::RemoveNode(node),
            };
            ask(app, request, vec![]);
        }
        Action::Pause => {
            if app.paused() {
                app.overlay = Overlay::Confirm(Confirm {
                    question: "Resume the engine?".into(),
                    details: vec![match app.mode() {
                        Mode::Auto => "In AUTO mode it will act on its own decisions again.".into(),
                        _ => {
                            "Operations in flight continue; new ones still need your confirmation."
                                .into()
                        }
                    }],
                    on_yes: Confirmed::Resume,
                    ok_selected: false,
                });
            } else {
                notice(
                    app,
                    "engine paused: no operation starts or advances until you resume (p)",
                    false,
                );
                return vec![Effect::Engine(Command::Pause(true))];
            }
        }
        Action::ClusterPause => {
            let current = app
                .snapshot
                .as_ref()
                .and_then(|s| s.record.as_ref())
                .and_then(|r| r.paused_at(app.now).cloned());
            app.overlay = Overlay::Confirm(match current {
                Some(p) => Confirm {
                    question: "Resume every engine of the cluster?".into(),
                    details: vec![format!("Paused by {} ({}).", p.by, p.reason)],
                    on_yes: Confirmed::ClusterPause(None),
                    ok_selected: false,
                },
                None => Confirm {
                    question: "Pause every engine of the cluster for 30 minutes?".into(),
                    details: vec![
                        "No operation starts anywhere; one in flight waits where it is.".into(),
                        "`k3s-autoscaler resume` (or P again) ends it early.".into(),
                    ],
                    on_yes: Confirmed::ClusterPause(Some(std::time::Duration::from_secs(1800))),
                    ok_selected: false,
                },
            });
        }
        Action::ToggleAuto => {
            let (target, detail) = match app.mode() {
                Mode::Auto => (
                    Mode::Supervised,
                    "The engine will only suggest; you confirm each action.",
                ),
                _ => (
                    Mode::Auto,
                    "The engine will start scale-ups and scale-downs on its own.",
                ),
            };
            app.overlay = Overlay::Confirm(Confirm {
                question: format!("Switch to {}?", target.badge()),
                details: vec![detail.into()],
                on_yes: Confirmed::SetMode(target),
                ok_selected: false,
            });
        }
    }
    Vec::new()
}

/// Check the request against the engine's safety rules on the latest data;
/// open the dialog if it passes, say why not if it does not.
fn ask(app: &mut App, request: Request, reasons: Vec<String>) {
    let Some(snapshot) = &app.snapshot else {
        notice(app, "no data yet", true);
        return;
    };
    let Some(record) = &snapshot.record else {
        notice(
            app,
            "refused: the state table is Unknown; refusing to act blind",
            true,
        );
        return;
    };
    match validate_request(&app.settings, &snapshot.observation, record, &request) {
        Ok(intent) => {
            let mut details = reasons;
            details.push("It runs under the lock and is checked again on fresh data first.".into());
            app.overlay = Overlay::Confirm(Confirm {
                question: format!("{}?", capitalise(&intent.label())),
                details,
                on_yes: Confirmed::Request(request),
                ok_selected: false,
            });
        }
        Err(refusal) => notice(app, format!("refused: {refusal}"), true),
    }
}

/// Keys inside the reconciliation view: move, fix (confirmed), close.
fn on_recon_key(app: &mut App, key: KeyEvent, selected: usize) -> Vec<Effect> {
    let findings = app
        .snapshot
        .as_ref()
        .map(|s| s.findings.clone())
        .unwrap_or_default();
    match key.code {
        KeyCode::Char('j') | KeyCode::Down => {
            app.overlay = Overlay::Reconcile {
                selected: (selected + 1).min(findings.len().saturating_sub(1)),
            };
        }
        KeyCode::Char('k') | KeyCode::Up => {
            app.overlay = Overlay::Reconcile {
                selected: selected.saturating_sub(1),
            }
        }
        KeyCode::Enter if !app.read_only => {
            use crate::engine::reconcile::Finding;
            let Some(finding) = findings.get(selected) else {
                return Vec::new();
            };
            let request = match finding {
                Finding::NeverJoined { instance, .. }
                | Finding::OrphanInstance { instance, .. } => {
                    Request::TerminateStray(instance.clone())
                }
                Finding::GhostNode { node, .. } => Request::DeleteGhost(node.clone()),
                Finding::StrayCordon { node } => Request::Uncordon(node.clone()),
                Finding::OperationInstancesGone { op_id, .. } => {
                    Request::CloseOperation(op_id.clone())
                }
            };
            let details = vec![finding.describe(), format!("Fix: {}.", finding.fix())];
            app.overlay = Overlay::None;
            if let Request::CloseOperation(_) = request {
                // Checked by the engine under the lock; nothing to pre-check here.
                app.overlay = Overlay::Confirm(Confirm {
                    question: format!("{}?", capitalise(&describe(&request))),
                    details,
                    on_yes: Confirmed::Request(request),
                    ok_selected: false,
                });
            } else {
                ask(app, request, details);
            }
        }
        KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('R') => app.overlay = Overlay::None,
        _ => {}
    }
    Vec::new()
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().collect::<String>() + chars.as_str(),
        None => String::new(),
    }
}

fn on_dialog_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let Overlay::Confirm(dialog) = &mut app.overlay else {
        return Vec::new();
    };
    let confirmed = match key.code {
        KeyCode::Char('y') | KeyCode::Char('Y') => true,
        KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc | KeyCode::Char('q') => false,
        KeyCode::Enter => dialog.ok_selected,
        KeyCode::Left
        | KeyCode::Right
        | KeyCode::Tab
        | KeyCode::BackTab
        | KeyCode::Char('h')
        | KeyCode::Char('l') => {
            dialog.ok_selected = !dialog.ok_selected;
            return Vec::new();
        }
        _ => return Vec::new(),
    };
    let Overlay::Confirm(dialog) = std::mem::take(&mut app.overlay) else {
        return Vec::new();
    };
    if !confirmed {
        notice(app, "cancelled", false);
        return Vec::new();
    }
    let command = match dialog.on_yes {
        Confirmed::Request(request) => {
            notice(app, format!("confirmed: {}", describe(&request)), false);
            Command::Operator(request)
        }
        Confirmed::SetMode(mode) => Command::SetMode(mode),
        Confirmed::Resume => Command::Pause(false),
        Confirmed::ClusterPause(d) => Command::ClusterPause(d),
    };
    vec![Effect::Engine(command)]
}

fn describe(request: &Request) -> String {
    match request {
        Request::Suggested(EngineAction::Hold) => "hold".into(),
        Request::Suggested(action) => action.label(),
        Request::AddWorker => "one more worker".into(),
        Request::RemoveNode(n) => format!("drain and remove {n}"),
        Request::Cordon(n) => format!("cordon {n}"),
        Request::Uncordon(n) => format!("uncordon {n}"),
        Request::TerminateStray(i) => format!("terminate {i}"),
        Request::DeleteGhost(n) => format!("delete the ghost node {n}"),
        Request::CloseOperation(op) => format!("close {op}"),
    }
}

/// The selected row, if it is a node (instances without a node cannot be
/// cordoned or drained).
fn selected_node(app: &App) -> Option<String> {
    let name = app.selected.as_ref()?;
    let rows = super::workers::visible(app);
    rows.iter()
        .find(|r| &r.name == name && r.ready.is_some())
        .map(|r| r.name.clone())
}

fn move_selection(app: &mut App, delta: i64) {
    match app.focus {
        Focus::Log => app.log_state.transition(if delta > 0 {
            tui_logger::TuiWidgetEvent::NextPageKey
        } else {
            tui_logger::TuiWidgetEvent::PrevPageKey
        }),
        _ => {
            let rows = super::workers::visible(app);
            if rows.is_empty() {
                return;
            }
            let current = app
                .selected
                .as_ref()
                .and_then(|s| rows.iter().position(|r| &r.name == s));
            let next = match current {
                None => 0,
                Some(i) => (i as i64 + delta).clamp(0, rows.len() as i64 - 1) as usize,
            };
            app.selected = Some(rows[next].name.clone());
            app.focus = Focus::Workers;
        }
    }
}

fn keep_selection_visible(app: &mut App) {
    let rows = super::workers::visible(app);
    let still = app
        .selected
        .as_ref()
        .is_some_and(|s| rows.iter().any(|r| &r.name == s));
    if !still {
        app.selected = rows.first().map(|r| r.name.clone());
    }
}
