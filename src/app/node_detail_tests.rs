//! The node detail view's content and its keys.

use super::*;
use crate::app::keymap::Keymap;
use crate::app::{Mode, Msg, Overlay, Snapshot, update};
use crate::engine::boot::{BootTimeline, stats};
use crate::engine::testkit::{T0, at, cluster, pod, view_mut};
use crate::engine::{PolicyMemory, Settings, TickReport, decide};
use crate::ports::{OpRecord, StateSnapshot};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::BTreeMap;

fn timeline() -> BootTimeline {
    BootTimeline {
        instance_id: "w1".into(),
        op_id: "op-7".into(),
        instance_type: "t3.large".into(),
        zone: "eu-west-1a".into(),
        launched: at(-200),
        running: Some(at(-185)),
        registered: Some(at(-160)),
        ready: Some(at(-130)),
        verified: Some(at(-110)),
    }
}

fn console(read_only: bool) -> App {
    let mut obs = cluster(3, 50.0, T0);
    // A pod nothing would recreate: it keeps the node.
    view_mut(&mut obs)
        .pods
        .push(pod("bare", Some("w1"), 100, None));
    let record = OpRecord::default();
    let settings = Settings::default();
    let mut memory = PolicyMemory::default();
    let mut decision = decide(&settings, &mut memory, &obs, &record, T0);
    decision.standing =
        crate::engine::policy::standing(&settings, &memory, &obs, &record, T0, &decision);
    let boot = vec![timeline()];
    let report = TickReport {
        at: T0,
        observation: obs,
        decision,
        state: Ok(StateSnapshot { lock: None, record }),
        exec: None,
        findings: vec![],
        boot_stats: stats(boot.iter()),
        cluster_source: None,
        latency: Default::default(),
        boot,
    };
    let keymap = Keymap::new(read_only, &BTreeMap::new()).expect("the default keymap");
    let mut app = App::new(
        "test".into(),
        true,
        read_only,
        keymap,
        Settings::default(),
        T0,
    );
    let mode = if read_only {
        Mode::ReadOnly
    } else {
        Mode::Supervised
    };
    let snapshot = Snapshot::build(report, Ok(BTreeMap::new()), mode, false, None);
    update(&mut app, Msg::Snapshot(Box::new(snapshot)));
    app
}

fn key(app: &mut App, code: KeyCode) {
    update(app, Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

#[test]
fn d_opens_the_selected_worker_with_its_boot_pods_and_standing_and_esc_closes_it() {
    let mut app = console(false);
    assert_eq!(app.selected.as_deref(), Some("w1"));
    key(&mut app, KeyCode::Char('d'));
    let Overlay::Node { name, instance_id } = app.overlay.clone() else {
        panic!("d opens the detail: {:?}", app.overlay)
    };
    let d = node_detail(&app, &name, &instance_id).expect("w1 is shown");
    assert_eq!(d.title, "w1");
    assert!(
        d.facts
            .starts_with("instance w1 · t3.large · eu-west-1a · Ready"),
        "{}",
        d.facts
    );
    assert!(d.standing.is_some(), "{d:?}");
    assert_eq!(
        d.boot,
        vec![
            "launched 23:56:40 by op-7 · 1m30s: running 15s · registered 25s · Ready 30s · verified 20s"
                .to_string(),
            "t3.large in eu-west-1a: p50 1m30s · p95 1m30s over 1 launch(es)".to_string(),
        ]
    );
    let fate = |key: &str| {
        d.pods
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, f)| f.clone())
    };
    assert_eq!(fate("default/ds-1"), Some(PodFate::Ignored("DaemonSet")));
    assert_eq!(fate("default/web-1a"), Some(PodFate::Evicted));
    assert!(
        matches!(fate("default/bare"), Some(PodFate::Blocks(why)) if why.contains("no controller"))
    );
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.overlay, Overlay::None);
}

#[test]
fn in_read_only_mode_enter_opens_the_detail_and_applies_nothing() {
    let mut app = console(true);
    key(&mut app, KeyCode::Enter);
    assert!(
        matches!(app.overlay, Overlay::Node { .. }),
        "{:?}",
        app.overlay
    );
    // Inside it, a panel key does nothing unseen.
    key(&mut app, KeyCode::Char('c'));
    assert!(matches!(app.overlay, Overlay::Node { .. }));
    key(&mut app, KeyCode::Char('q'));
    assert_eq!(app.overlay, Overlay::None);
    assert!(!app.quit, "q closed the view, it did not quit");
}
