//! Screens of the console at 120×40, rendered to ratatui's TestBackend from
//! a seeded simulated state and a fixed clock, compared with committed
//! snapshots (`tests/console/snapshots/`; accept changes with INSTA_UPDATE=always).

use crate::support;

use k3s_autoscaler::app::{Msg, update};
use k3s_autoscaler::ui::{ViewOptions, view};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

const OPTIONS: ViewOptions = ViewOptions {
    log_timestamps: false,
};

fn render(app: &k3s_autoscaler::app::App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| view(f, app, OPTIONS)).unwrap();
    terminal.backend().to_string()
}

fn press(app: &mut k3s_autoscaler::app::App, code: KeyCode) {
    update(app, Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

/// 40 ticks of 15 s: ten minutes into the flash sale, pods pending.
const TICKS: usize = 40;

#[tokio::test]
async fn main_screen() {
    let app = support::seeded_app(false, TICKS).await;
    let screen = render(&app, 120, 40);
    assert!(screen.contains("scale-up +3"), "{screen}");
    insta::assert_snapshot!("main_screen", screen);
}

#[tokio::test]
async fn help_overlay() {
    let mut app = support::seeded_app(false, TICKS).await;
    press(&mut app, KeyCode::Char('?'));
    let screen = render(&app, 120, 40);
    assert!(screen.contains(" Help "), "{screen}");
    insta::assert_snapshot!("help_overlay", screen);
}

/// `d` on the selected worker: what it is, its standing, its pods and
/// what a drain does with each (a seeded demo's initial workers: not
/// launched by this console, so their boot is not timed).
#[tokio::test]
async fn node_detail() {
    let mut app = support::seeded_app(false, TICKS).await;
    press(&mut app, KeyCode::Char('d'));
    let screen = render(&app, 120, 40);
    assert!(screen.contains("what a drain does"), "{screen}");
    assert!(screen.contains("left alone (DaemonSet)"), "{screen}");
    insta::assert_snapshot!("node_detail", screen);
}

#[tokio::test]
async fn confirmation_dialog() {
    let mut app = support::seeded_app(false, TICKS).await;
    press(&mut app, KeyCode::Enter);
    let screen = render(&app, 120, 40);
    assert!(screen.contains(" Confirm "), "{screen}");
    assert!(
        screen.contains("[ Cancel ]") && screen.contains("[ OK ]"),
        "{screen}"
    );
    insta::assert_snapshot!("confirmation_dialog", screen);
}

#[tokio::test]
async fn read_only_screen() {
    let app = support::seeded_app(true, TICKS).await;
    let screen = render(&app, 120, 40);
    assert!(screen.contains("READ-ONLY"), "{screen}");
    let footer = screen.lines().last().unwrap();
    for hidden in ["apply", "worker", "cordon", "remove", "pause"] {
        assert!(
            !footer.contains(hidden),
            "read-only footer shows {hidden}: {footer}"
        );
    }
    insta::assert_snapshot!("read_only_screen", screen);
}

#[tokio::test]
async fn a_small_terminal_gets_a_message_not_a_panic() {
    let app = support::seeded_app(false, 2).await;
    // A zero-sized terminal draws nothing (TestBackend cannot print one).
    let mut terminal = Terminal::new(TestBackend::new(0, 0)).unwrap();
    terminal.draw(|f| view(f, &app, OPTIONS)).unwrap();
    for (w, h) in [(79, 24), (80, 23), (20, 5), (1, 1)] {
        let screen = render(&app, w, h);
        if w >= 20 {
            assert!(screen.contains("Terminal"), "{w}x{h}: {screen}");
        }
    }
    // Exactly the minimum draws the full layout.
    assert!(render(&app, 80, 24).contains("Workers"));
}

#[tokio::test]
async fn at_80_columns_the_footer_keeps_help_and_quit() {
    let app = support::seeded_app(false, 2).await;
    let screen = render(&app, 80, 24);
    let footer = screen.lines().last().unwrap();
    assert!(footer.contains("? help  q/Ctrl-c quit"), "{footer}");
    assert!(footer.contains("Enter apply"), "{footer}");
    assert!(
        !footer.contains("window"),
        "the hints that do not fit go: {footer}"
    );
}

/// A refused operation write is on screen, in the header and in the
/// operation panel, with the service's words; it stays until an attempt
/// goes through.
#[tokio::test]
async fn a_refused_attempt_shows_in_the_header_and_the_operation_panel() {
    use k3s_autoscaler::engine::{ExecFailure, ExecReport};
    let mut app = support::seeded_app(false, 2).await;
    let mut snapshot = app.snapshot.clone().unwrap();
    snapshot.exec = Some(ExecReport {
        lock_taken: true,
        error: Some(ExecFailure {
            backend: "dynamodb",
            op_id: Some("op-1234abcd".into()),
            message: "fenced write refused: request rejected as invalid (a bug: please report): ValidationException".into(),
        }),
        ..ExecReport::default()
    });
    snapshot.errors.insert(
        "operation",
        "dynamodb refused: op-1234abcd: fenced write refused".into(),
    );
    update(&mut app, Msg::Snapshot(Box::new(snapshot.clone())));
    let screen = render(&app, 160, 40);
    let header: String = screen.lines().take(3).collect::<Vec<_>>().join("\n");
    assert!(
        header.contains("operation: dynamodb refused: op-1234abcd"),
        "{header}"
    );
    // The operation panel's line: when, which backend, the words.
    let panel = |screen: &str| screen.contains("ago, dynamodb: op-1234abcd: fenced write refused");
    assert!(panel(&screen), "{screen}");
    // The next tick does not try: still shown. One that goes through: gone.
    snapshot.exec = None;
    snapshot.errors.clear();
    update(&mut app, Msg::Snapshot(Box::new(snapshot.clone())));
    assert!(panel(&render(&app, 160, 40)));
    snapshot.exec = Some(ExecReport {
        lock_taken: true,
        ..ExecReport::default()
    });
    update(&mut app, Msg::Snapshot(Box::new(snapshot)));
    assert!(!panel(&render(&app, 160, 40)));
}

/// The suggestion panel marks a reason by its `concern` flag, set where
/// the engine wrote it, never by its words: a concern without "Unknown"
/// or "blocked" in it is marked, a plain reading that mentions both is not.
#[tokio::test]
async fn the_suggestion_panel_marks_concerns_by_flag_not_by_words() {
    use k3s_autoscaler::engine::Reason;
    let mut app = support::seeded_app(false, TICKS).await;
    let snapshot = app.snapshot.as_mut().expect("ticked");
    snapshot.decision.reasons = vec![
        Reason::concern("held: the flag alone marks this".into()),
        Reason::from("pod blocked-job on node Unknown-7 is fine"),
    ];
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    terminal.draw(|f| view(f, &app, OPTIONS)).unwrap();
    let buffer = terminal.backend().buffer().clone();
    let theme = k3s_autoscaler::ui::theme::Theme::get(app.light_theme);
    let colour_of = |words: &str| {
        let screen = terminal.backend().to_string();
        let (y, line) = screen
            .lines()
            .enumerate()
            .find(|(_, l)| l.contains(words))
            .unwrap_or_else(|| panic!("{words:?} not on screen:\n{screen}"));
        let x = line[..line.find(words).unwrap()].chars().count() as u16;
        buffer[(x, y as u16)].fg
    };
    assert_eq!(colour_of("held: the flag"), theme.warn.fg.unwrap());
    assert_eq!(colour_of("pod blocked-job"), theme.text.fg.unwrap());
}
