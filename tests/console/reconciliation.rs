//! Reconciliation on the simulated cluster: `--drift` puts one of
//! each finding into a seeded world; the engine finds every class, the
//! console's `R` view shows them, and every fix is a confirmed request that
//! the engine carries out under the lock.

use crate::support;

use k3s_autoscaler::app::keymap::Keymap;
use k3s_autoscaler::app::{App, Command, Effect, Msg, update};
use k3s_autoscaler::engine::reconcile::Finding;
use k3s_autoscaler::engine::{Mode, Request};
use k3s_autoscaler::harness::demo;
use k3s_autoscaler::ports::OpPhase;
use k3s_autoscaler::runtime::settings::engine_settings;
use k3s_autoscaler::runtime::{Engine, Shutdown};
use k3s_autoscaler::sim::ScenarioKind;
use k3s_autoscaler::sim::ports::lock;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::BTreeMap;
use std::time::Duration;

const SEED: u64 = 11;

fn press(app: &mut App, code: KeyCode) -> Vec<Effect> {
    update(app, Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn screen(app: &App) -> String {
    support::screen(app, 140, 45)
}

fn new_app(read_only: bool, now: k3s_autoscaler::ports::Timestamp) -> App {
    let config = k3s_autoscaler::config::Config::default();
    App::new(
        config.cluster.name.clone(),
        true,
        read_only,
        Keymap::new(read_only, &BTreeMap::new()).unwrap(),
        engine_settings(&config),
        now,
    )
}

async fn tick_into(
    engine: &mut Engine,
    demo: &demo::Demo,
    app: &mut App,
    request: Option<Request>,
) -> Vec<Finding> {
    let report = engine.tick(request, &Shutdown::new()).await;
    let findings = report.findings.clone();
    support::show(demo, engine, app, report).await;
    findings
}

fn class(f: &Finding) -> String {
    serde_json::to_value(f).unwrap()["class"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn every_class_is_found_on_a_drifted_simulation_and_shown_in_the_view() {
    let (config, demo) = support::demo(ScenarioKind::Steady, SEED, true);
    let drift = lock(&demo.world).inject_drift();
    let mut engine = demo::engine_on(&demo, &config, Mode::ReadOnly, SEED);
    let mut app = new_app(true, demo.ports.clock.now());
    let findings = tick_into(&mut engine, &demo, &mut app, None).await;

    let mut classes: Vec<String> = findings.iter().map(class).collect();
    classes.sort();
    assert_eq!(
        classes,
        [
            "ghost_node",
            "never_joined",
            "operation_instances_gone",
            "orphan_instance",
            "stray_cordon"
        ]
    );
    for f in &findings {
        let subject = match f {
            Finding::NeverJoined { instance, .. } => (instance, &drift.never_joined),
            Finding::OrphanInstance { instance, .. } => (instance, &drift.orphan),
            Finding::GhostNode { node, .. } => (node, &drift.ghost_node),
            Finding::StrayCordon { node } => (node, &drift.stray_cordon),
            Finding::OperationInstancesGone { op_id, .. } => (op_id, &drift.gone_op),
        };
        assert_eq!(subject.0, subject.1, "{f:?}");
    }
    let Some(Finding::NeverJoined {
        console_tail: Some(tail),
        ..
    }) = findings
        .iter()
        .find(|f| matches!(f, Finding::NeverJoined { .. }))
    else {
        panic!("the never-joined finding carries its console tail: {findings:?}");
    };
    assert!(tail.contains("failed to get CA certs"), "{tail}");

    // The header counts them; `R` opens the view, read-only included.
    let main = screen(&app);
    assert!(main.contains("5 to reconcile"), "{main}");
    press(&mut app, KeyCode::Char('R'));
    let view = screen(&app);
    assert!(view.contains("Reconciliation · 5 finding(s)"), "{view}");
    for text in [
        "never joined",
        "orphan instance",
        "ghost node",
        "stray cordon",
        "operation's instances gone",
        drift.never_joined.as_str(),
        drift.orphan.as_str(),
        drift.ghost_node.as_str(),
        drift.stray_cordon.as_str(),
        drift.gone_op.as_str(),
        "failed to get CA certs",
        "read-only: no fixes",
    ] {
        assert!(view.contains(text), "{text} missing from\n{view}");
    }
    // Read-only: Enter is not a fix.
    assert!(press(&mut app, KeyCode::Enter).is_empty());
    assert!(app.overlay.confirm().is_none());
}

/// Select the finding of `class` in the `R` view, fix it, confirm.
fn fix(app: &mut App, wanted: &str, findings: &[Finding]) -> Request {
    let index = findings
        .iter()
        .position(|f| class(f) == wanted)
        .unwrap_or_else(|| panic!("no {wanted} in {findings:?}"));
    press(app, KeyCode::Char('R'));
    for _ in 0..index {
        press(app, KeyCode::Char('j'));
    }
    assert!(
        press(app, KeyCode::Enter).is_empty(),
        "nothing before confirming"
    );
    assert!(
        app.overlay.confirm().is_some(),
        "a fix asks to confirm: {}",
        screen(app)
    );
    match press(app, KeyCode::Char('y')).as_slice() {
        [Effect::Engine(Command::Operator(request))] => request.clone(),
        other => panic!("confirming {wanted} gave {other:?}"),
    }
}

#[tokio::test]
async fn every_fix_is_confirmed_then_carried_out_by_the_engine() {
    let (config, demo) = support::demo(ScenarioKind::Steady, SEED, false);
    let drift = lock(&demo.world).inject_drift();
    let mut engine = demo::engine_on(&demo, &config, Mode::Supervised, SEED);
    let mut app = new_app(false, demo.ports.clock.now());
    let mut findings = {
        // Look without acting first: a read-only engine on the same world.
        let mut looker = demo::engine_on(&demo, &config, Mode::ReadOnly, SEED);
        tick_into(&mut looker, &demo, &mut app, None).await
    };

    for wanted in [
        "operation_instances_gone",
        "never_joined",
        "orphan_instance",
        "ghost_node",
        "stray_cordon",
    ] {
        let request = fix(&mut app, wanted, &findings);
        findings = tick_into(&mut engine, &demo, &mut app, Some(request.clone())).await;
        // Let the operation it started finish (a termination, a delete).
        for _ in 0..6 {
            demo.ports.clock.sleep(Duration::from_secs(15)).await;
            findings = tick_into(&mut engine, &demo, &mut app, None).await;
        }
        assert!(
            !findings.iter().any(|f| class(f) == wanted),
            "{wanted} still there after {request:?}: {findings:?}"
        );
        if wanted == "operation_instances_gone" {
            let w = lock(&demo.world);
            let op = w.table.record.op.as_ref().unwrap();
            assert_eq!(op.id, drift.gone_op);
            assert_eq!(op.phase, OpPhase::Failed);
            assert!(
                op.outcome
                    .as_deref()
                    .is_some_and(|o| o.contains("its instances are gone")),
                "{op:?}"
            );
        }
    }
    assert_eq!(findings, vec![], "every finding fixed");

    let w = lock(&demo.world);
    for id in [&drift.never_joined, &drift.orphan] {
        assert!(!w.fleet.instances[id].state.is_live(), "{id} terminated");
    }
    assert!(
        !w.fleet.nodes.contains_key(&drift.ghost_node),
        "ghost deleted"
    );
    assert!(!w.fleet.nodes[&drift.stray_cordon].cordoned, "uncordoned");
    let op = w.table.record.op.as_ref().unwrap();
    assert_ne!(
        op.id, drift.gone_op,
        "later fixes ran operations of their own"
    );
    assert_eq!(
        w.invariants.violations.len(),
        0,
        "{:?}",
        w.invariants.violations
    );
}

#[tokio::test]
async fn auto_mode_cleans_up_the_never_joined_and_only_reports_the_rest() {
    let (config, demo) = support::demo(ScenarioKind::Steady, SEED, false);
    let drift = lock(&demo.world).inject_drift();
    let mut engine = demo::engine_on(&demo, &config, Mode::Auto, SEED);
    let mut app = new_app(false, demo.ports.clock.now());
    let mut findings = Vec::new();
    // Two minutes: well inside the orphan's join timeout.
    for _ in 0..8 {
        findings = tick_into(&mut engine, &demo, &mut app, None).await;
        demo.ports.clock.sleep(Duration::from_secs(15)).await;
    }
    let mut classes: Vec<String> = findings.iter().map(class).collect();
    classes.sort();
    assert_eq!(classes, ["ghost_node", "orphan_instance", "stray_cordon"]);
    let w = lock(&demo.world);
    assert!(!w.fleet.instances[&drift.never_joined].state.is_live());
    assert!(w.fleet.instances[&drift.orphan].state.is_live());
    assert!(w.fleet.nodes.contains_key(&drift.ghost_node));
    assert!(w.fleet.nodes[&drift.stray_cordon].cordoned);
    assert_eq!(
        w.invariants.violations.len(),
        0,
        "{:?}",
        w.invariants.violations
    );
}

/// A node that looks like a ghost because its instance fell out of the
/// managed list (its tags edited by hand) while the instance still runs:
/// confirmed by id before the delete, it is kept.
#[tokio::test]
async fn a_ghost_whose_instance_still_runs_under_other_tags_is_kept() {
    let (config, demo) = support::demo(ScenarioKind::Steady, SEED, false);
    let drift = lock(&demo.world).inject_drift();
    let ghost_instance = {
        let mut w = lock(&demo.world);
        let id = w.fleet.nodes[&drift.ghost_node].instance_id.clone();
        let i = w.fleet.instances.get_mut(&id).expect("instance");
        // Running, but no longer tagged as ours.
        i.state = k3s_autoscaler::ports::InstanceState::Running;
        i.managed = false;
        id
    };
    let mut engine = demo::engine_on(&demo, &config, Mode::Supervised, SEED);
    let mut app = new_app(false, demo.ports.clock.now());
    let findings = {
        let mut looker = demo::engine_on(&demo, &config, Mode::ReadOnly, SEED);
        tick_into(&mut looker, &demo, &mut app, None).await
    };
    // The drifted world has a scale-up in flight whose instances are
    // gone: closed first (one operation at a time), then the ghost.
    let mut findings = findings;
    for wanted in ["operation_instances_gone", "ghost_node"] {
        let request = fix(&mut app, wanted, &findings);
        findings = tick_into(&mut engine, &demo, &mut app, Some(request)).await;
        for _ in 0..4 {
            demo.ports.clock.sleep(Duration::from_secs(15)).await;
            findings = tick_into(&mut engine, &demo, &mut app, None).await;
        }
    }
    let w = lock(&demo.world);
    assert!(
        w.fleet.nodes.contains_key(&drift.ghost_node),
        "the node of running instance {ghost_instance} was deleted"
    );
    let op = w
        .table
        .record
        .op
        .as_ref()
        .expect("the delete ran as an operation");
    assert!(
        op.outcome
            .as_deref()
            .is_some_and(|o| o.contains("live instance")),
        "{op:?}"
    );
}
