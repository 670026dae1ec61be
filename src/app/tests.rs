//! `update()` for the key flows: confirm, cancel, refusals, filter, sort.

use super::keymap::Keymap;
use super::*;
use crate::engine::testkit::{T0, cluster, view_mut};
use crate::engine::{
    Action as EngineAction, ExecReport, Observation, PolicyMemory, TickReport, decide,
};
use crate::ports::{OpRecord, StateSnapshot};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::BTreeMap;

fn app(read_only: bool) -> App {
    let keymap = Keymap::new(read_only, &BTreeMap::new()).unwrap();
    App::new(
        "test".into(),
        true,
        read_only,
        keymap,
        Settings::default(),
        T0,
    )
}

fn snapshot_of(obs: Observation, mode: Mode, paused: bool) -> Snapshot {
    let record = OpRecord::default();
    let decision = decide(
        &Settings::default(),
        &mut PolicyMemory::default(),
        &obs,
        &record,
        T0,
    );
    let report = TickReport {
        at: T0,
        observation: obs,
        decision,
        state: Ok(StateSnapshot { lock: None, record }),
        exec: None,
        findings: vec![],
        boot: vec![],
        boot_stats: vec![],
        cluster_source: None,
        latency: Default::default(),
    };
    Snapshot::build(report, Ok(BTreeMap::new()), mode, paused, None)
}

fn with(obs: Observation) -> App {
    let mut a = app(false);
    update(
        &mut a,
        Msg::Snapshot(Box::new(snapshot_of(obs, Mode::Supervised, false))),
    );
    a
}

fn key(a: &mut App, code: KeyCode) -> Vec<Effect> {
    update(a, Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn chars(a: &mut App, text: &str) -> Vec<Effect> {
    text.chars()
        .flat_map(|c| key(a, KeyCode::Char(c)))
        .collect()
}

#[test]
fn a_suggestion_runs_only_after_enter_then_y() {
    let mut a = with(cluster(5, 80.0, T0));
    assert_eq!(key(&mut a, KeyCode::Enter), vec![]);
    let dialog = a
        .overlay
        .confirm()
        .cloned()
        .expect("Enter opens the confirmation");
    assert_eq!(dialog.question, "Scale-up +2?");
    assert!(!dialog.ok_selected, "Cancel is the default");
    let effects = key(&mut a, KeyCode::Char('y'));
    assert_eq!(
        effects,
        vec![Effect::Engine(Command::Operator(Request::Suggested(
            EngineAction::ScaleUp { count: 2 }
        )))]
    );
    assert!(a.overlay.confirm().is_none());
}

#[test]
fn cancel_by_n_esc_or_the_default_button() {
    for cancel in [KeyCode::Char('n'), KeyCode::Esc, KeyCode::Enter] {
        let mut a = with(cluster(5, 80.0, T0));
        key(&mut a, KeyCode::Enter);
        assert!(a.overlay.confirm().is_some());
        assert_eq!(key(&mut a, cancel), vec![], "{cancel:?} must not confirm");
        assert!(a.overlay.confirm().is_none());
        assert_eq!(
            a.notice.as_ref().map(|n| n.text.as_str()),
            Some("cancelled")
        );
    }
    // Moving to OK and pressing Enter confirms.
    let mut a = with(cluster(5, 80.0, T0));
    key(&mut a, KeyCode::Enter);
    key(&mut a, KeyCode::Right);
    assert_eq!(key(&mut a, KeyCode::Enter).len(), 1);
}

#[test]
fn a_hold_has_nothing_to_apply() {
    let mut a = with(cluster(5, 50.0, T0));
    assert_eq!(key(&mut a, KeyCode::Enter), vec![]);
    assert!(a.overlay.confirm().is_none());
    assert!(a.notice.unwrap().text.starts_with("nothing to apply: hold"));
}

#[test]
fn one_more_worker_is_refused_at_max_with_the_reason() {
    let mut a = with(cluster(10, 50.0, T0));
    assert_eq!(key(&mut a, KeyCode::Char('+')), vec![]);
    assert!(
        a.overlay.confirm().is_none(),
        "no dialog for a refused request"
    );
    let notice = a.notice.unwrap();
    assert!(notice.error);
    assert!(
        notice.text.contains("would exceed max_workers (10)"),
        "{}",
        notice.text
    );

    let mut a = with(cluster(4, 50.0, T0));
    key(&mut a, KeyCode::Char('+'));
    assert_eq!(a.overlay.confirm().unwrap().question, "Scale-up +1?");
    assert_eq!(
        key(&mut a, KeyCode::Char('y')),
        vec![Effect::Engine(Command::Operator(Request::AddWorker))]
    );
}

#[test]
fn removing_a_node_is_refused_at_min_or_past_a_blocking_pod() {
    let mut a = with(cluster(2, 50.0, T0));
    key(&mut a, KeyCode::Char('r'));
    assert!(a.overlay.confirm().is_none());
    assert!(
        a.notice
            .as_ref()
            .unwrap()
            .text
            .contains("below min_workers (2)")
    );

    let mut obs = cluster(3, 50.0, T0);
    view_mut(&mut obs).pods.push(crate::engine::testkit::pod(
        "db-0",
        Some("w1"),
        100,
        Some("StatefulSet"),
    ));
    let mut a = with(obs);
    assert_eq!(a.selected.as_deref(), Some("w1"));
    key(&mut a, KeyCode::Char('r'));
    assert!(a.overlay.confirm().is_none());
    assert!(
        a.notice.as_ref().unwrap().text.contains("StatefulSet"),
        "{:?}",
        a.notice
    );
    // The next node is fine.
    key(&mut a, KeyCode::Char('j'));
    key(&mut a, KeyCode::Char('r'));
    assert_eq!(a.overlay.confirm().unwrap().question, "Scale-down w2?");
}

#[test]
fn read_only_refuses_every_dangerous_key() {
    let mut a = app(true);
    update(
        &mut a,
        Msg::Snapshot(Box::new(snapshot_of(
            cluster(5, 95.0, T0),
            Mode::ReadOnly,
            false,
        ))),
    );
    for code in [
        KeyCode::Enter,
        KeyCode::Char('+'),
        KeyCode::Char('c'),
        KeyCode::Char('u'),
        KeyCode::Char('r'),
        KeyCode::Char('p'),
        KeyCode::Char('a'),
    ] {
        assert_eq!(key(&mut a, code), vec![], "{code:?}");
        assert!(
            a.overlay.confirm().is_none(),
            "{code:?} opened a dialog in read-only mode"
        );
    }
    assert_eq!(a.mode(), Mode::ReadOnly);
}

#[test]
fn filter_and_sort_the_workers() {
    let mut a = with(cluster(5, 50.0, T0));
    key(&mut a, KeyCode::Char('/'));
    assert!(a.overlay.is_filter_input());
    chars(&mut a, "w4");
    key(&mut a, KeyCode::Enter);
    assert!(!a.overlay.is_filter_input());
    let names: Vec<String> = workers::visible(&a)
        .iter()
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(names, ["w4"]);
    assert_eq!(
        a.selected.as_deref(),
        Some("w4"),
        "selection follows the filter"
    );
    // Keys typed into the filter are text, not commands.
    key(&mut a, KeyCode::Char('/'));
    assert_eq!(chars(&mut a, "q"), vec![]);
    key(&mut a, KeyCode::Esc);
    assert!(a.filter.is_empty());
    assert_eq!(workers::visible(&a).len(), 5);

    // Age sort puts the youngest first; reversing flips it.
    for _ in 0..4 {
        key(&mut a, KeyCode::Char('s'));
    }
    assert_eq!(a.sort, workers::SortColumn::Age);
    assert_eq!(workers::visible(&a)[0].name, "w5");
    key(&mut a, KeyCode::Char('S'));
    assert_eq!(workers::visible(&a)[0].name, "w1");
}

#[test]
fn pause_is_immediate_resume_is_confirmed() {
    let mut a = with(cluster(5, 50.0, T0));
    assert_eq!(
        key(&mut a, KeyCode::Char('p')),
        vec![Effect::Engine(Command::Pause(true))]
    );
    update(
        &mut a,
        Msg::Snapshot(Box::new(snapshot_of(
            cluster(5, 50.0, T0),
            Mode::Supervised,
            true,
        ))),
    );
    assert!(a.paused());
    assert_eq!(key(&mut a, KeyCode::Char('p')), vec![]);
    assert_eq!(a.overlay.confirm().unwrap().question, "Resume the engine?");
    assert_eq!(
        key(&mut a, KeyCode::Char('y')),
        vec![Effect::Engine(Command::Pause(false))]
    );
}

#[test]
fn switching_to_auto_is_confirmed() {
    let mut a = with(cluster(5, 50.0, T0));
    key(&mut a, KeyCode::Char('a'));
    assert_eq!(a.overlay.confirm().unwrap().question, "Switch to AUTO?");
    assert_eq!(
        key(&mut a, KeyCode::Char('y')),
        vec![Effect::Engine(Command::SetMode(Mode::Auto))]
    );
}

#[test]
fn engine_refusals_show_as_errors_even_when_frozen() {
    let mut a = with(cluster(5, 50.0, T0));
    key(&mut a, KeyCode::Char('f'));
    let mut s = snapshot_of(cluster(6, 50.0, T0), Mode::Supervised, false);
    s.exec = Some(ExecReport {
        refused: Some("would exceed max_workers (10)".into()),
        ..ExecReport::default()
    });
    update(&mut a, Msg::Snapshot(Box::new(s)));
    assert!(a.notice.as_ref().unwrap().error);
    assert_eq!(
        a.snapshot.as_ref().unwrap().workers.len(),
        5,
        "frozen display"
    );
    key(&mut a, KeyCode::Char('f'));
    assert_eq!(
        a.snapshot.as_ref().unwrap().workers.len(),
        6,
        "unfrozen: the held snapshot shows"
    );
}

#[test]
fn quit_help_and_window_keys() {
    let mut a = with(cluster(3, 50.0, T0));
    key(&mut a, KeyCode::Char('?'));
    assert_eq!(a.overlay, Overlay::Help);
    assert_eq!(
        key(&mut a, KeyCode::Char('q')),
        vec![],
        "a key while help is open only closes it"
    );
    assert_eq!(a.overlay, Overlay::None);
    key(&mut a, KeyCode::Char(']'));
    key(&mut a, KeyCode::Char(']'));
    assert_eq!(a.window, ChartWindow::Hour6);
    key(&mut a, KeyCode::Char('['));
    assert_eq!(a.window, ChartWindow::Hour1);
    assert_eq!(key(&mut a, KeyCode::Char('q')), vec![Effect::Quit]);
    let ctrl_c = update(
        &mut with(cluster(3, 50.0, T0)),
        Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
    );
    assert_eq!(ctrl_c, vec![Effect::Quit]);
}

fn snapshot_with_record(obs: Observation, record: OpRecord) -> Snapshot {
    let mut s = snapshot_of(obs, Mode::Supervised, false);
    s.record = Some(record);
    s
}

#[test]
fn capital_p_pauses_the_cluster_after_confirmation_and_resumes_when_paused() {
    let mut a = with(cluster(3, 50.0, T0));
    assert_eq!(key(&mut a, KeyCode::Char('P')), vec![]);
    let dialog = a.overlay.confirm().cloned().expect("P asks first");
    assert!(dialog.question.contains("Pause every engine"), "{dialog:?}");
    assert_eq!(key(&mut a, KeyCode::Char('n')), vec![], "n cancels");
    assert!(a.overlay.confirm().is_none());
    key(&mut a, KeyCode::Char('P'));
    assert_eq!(
        key(&mut a, KeyCode::Char('y')),
        vec![Effect::Engine(Command::ClusterPause(Some(
            std::time::Duration::from_secs(1800)
        )))]
    );

    let record = OpRecord {
        pause: Some(crate::ports::Pause {
            by: "alice@laptop".into(),
            reason: "db migration".into(),
            since: T0,
            until: T0.plus(std::time::Duration::from_secs(600)),
            circuit: false,
        }),
        ..OpRecord::default()
    };
    update(
        &mut a,
        Msg::Snapshot(Box::new(snapshot_with_record(cluster(3, 50.0, T0), record))),
    );
    key(&mut a, KeyCode::Char('P'));
    let dialog = a
        .overlay
        .confirm()
        .cloned()
        .expect("P while paused offers to resume");
    assert!(dialog.question.contains("Resume"), "{dialog:?}");
    assert!(dialog.details[0].contains("alice@laptop"), "{dialog:?}");
    assert_eq!(
        key(&mut a, KeyCode::Char('y')),
        vec![Effect::Engine(Command::ClusterPause(None))]
    );
}

#[test]
fn read_only_has_no_cluster_pause_but_can_look_at_reconciliation() {
    let mut a = app(true);
    update(
        &mut a,
        Msg::Snapshot(Box::new(snapshot_of(
            cluster(3, 50.0, T0),
            Mode::ReadOnly,
            false,
        ))),
    );
    assert_eq!(key(&mut a, KeyCode::Char('P')), vec![]);
    assert!(
        a.overlay.confirm().is_none(),
        "P is not bound in read-only mode"
    );
    key(&mut a, KeyCode::Char('R'));
    assert_eq!(
        a.overlay,
        Overlay::Reconcile { selected: 0 },
        "R opens the view"
    );
    assert_eq!(key(&mut a, KeyCode::Enter), vec![]);
    assert!(a.overlay.confirm().is_none(), "but Enter fixes nothing");
    key(&mut a, KeyCode::Esc);
    assert_eq!(a.overlay, Overlay::None);
}

#[test]
fn a_fix_in_the_reconciliation_view_is_confirmed_first() {
    use crate::engine::reconcile::Finding;
    let mut obs = cluster(3, 50.0, T0);
    view_mut(&mut obs).nodes[1].cordoned = true;
    let mut s = snapshot_of(obs, Mode::Supervised, false);
    s.findings = vec![
        Finding::GhostNode {
            node: "w9".into(),
            instance: Some("i-9".into()),
        },
        Finding::StrayCordon { node: "w2".into() },
    ];
    let mut a = app(false);
    update(&mut a, Msg::Snapshot(Box::new(s)));
    key(&mut a, KeyCode::Char('R'));
    key(&mut a, KeyCode::Char('j'));
    key(&mut a, KeyCode::Char('j')); // stays on the last one
    assert_eq!(a.overlay, Overlay::Reconcile { selected: 1 });
    assert_eq!(key(&mut a, KeyCode::Enter), vec![]);
    assert!(
        !matches!(a.overlay, Overlay::Reconcile { .. }),
        "the view closes for the dialog"
    );
    let dialog = a.overlay.confirm().cloned().expect("Enter asks first");
    assert!(dialog.question.contains("w2"), "{dialog:?}");
    assert_eq!(
        key(&mut a, KeyCode::Char('y')),
        vec![Effect::Engine(Command::Operator(Request::Uncordon(
            "w2".into()
        )))]
    );
}
