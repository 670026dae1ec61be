//! The console's Log pane with the logging the console installs (tui-logger
//! behind tracing): the engine's own lines reach it. The other console
//! snapshots install no logger, so without this test the pane is never
//! drawn with anything in it. In a process of its own
//! (`support/own_process.rs`): the logger and its buffer are process-wide,
//! so another test's lines would interleave with these, and these would
//! show up in the other tests' screens.

use crate::support;
use crate::support::own_process;

use k3s_autoscaler::ui::{ViewOptions, view};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

#[test]
fn the_log_pane_shows_the_engines_lines() {
    own_process::run_child(module_path!(), "log_pane_in_a_process_of_its_own", &[]);
}

/// The child of the test above.
#[test]
#[ignore = "run by the_log_pane_shows_the_engines_lines"]
fn log_pane_in_a_process_of_its_own() {
    own_process::as_child(the_engines_lines_reach_the_pane);
}

async fn the_engines_lines_reach_the_pane() {
    k3s_autoscaler::runtime::logging::init_console();
    let app = support::seeded_app(false, 40).await;
    // What the console's draw loop does before each frame.
    tui_logger::move_events();
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    terminal
        .draw(|f| {
            view(
                f,
                &app,
                ViewOptions {
                    log_timestamps: false,
                },
            )
        })
        .unwrap();
    let screen = terminal.backend().to_string();
    let pane: Vec<&str> = screen
        .lines()
        .skip_while(|l| !l.contains("╭ Log"))
        .take_while(|l| !l.contains("╰"))
        .collect();
    assert!(pane.len() > 2, "no Log pane: {screen}");
    assert!(
        pane.iter().any(|l| l.contains("decision")),
        "the engine's decisions are not in the Log pane:\n{}",
        pane.join("\n")
    );
    insta::assert_snapshot!("log_pane", pane.join("\n"));
}
