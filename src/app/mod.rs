//! The console's state and its `update` (the Elm architecture): keys and
//! engine snapshots come in as messages, effects for the runtime come out.
//! Nothing here performs IO; `ui::view` draws the state without changing it.

pub mod history;
pub mod keymap;
pub mod node_detail;
pub mod snapshot;
pub mod update;
pub mod workers;

pub use snapshot::{Marker, Snapshot, WorkerRow};
pub use update::{Command, Effect, Msg, update};

use crate::engine::{Mode, Request, Settings};
use crate::ports::Timestamp;
use history::History;
use keymap::Keymap;
use std::time::Duration;
use workers::SortColumn;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Focus {
    Charts,
    Workers,
    Operation,
    Suggestion,
    Log,
}

impl Focus {
    pub const ALL: [Focus; 5] = [
        Focus::Charts,
        Focus::Workers,
        Focus::Operation,
        Focus::Suggestion,
        Focus::Log,
    ];

    fn index(self) -> usize {
        Focus::ALL.iter().position(|f| *f == self).unwrap_or(0)
    }

    pub fn next(self) -> Focus {
        Focus::ALL[(self.index() + 1) % Focus::ALL.len()]
    }

    pub fn prev(self) -> Focus {
        Focus::ALL[(self.index() + Focus::ALL.len() - 1) % Focus::ALL.len()]
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ChartWindow {
    Min15,
    Hour1,
    Hour6,
}

impl ChartWindow {
    pub fn duration(self) -> Duration {
        Duration::from_secs(match self {
            ChartWindow::Min15 => 15 * 60,
            ChartWindow::Hour1 => 3600,
            ChartWindow::Hour6 => 6 * 3600,
        })
    }

    pub fn label(self) -> &'static str {
        match self {
            ChartWindow::Min15 => "15m",
            ChartWindow::Hour1 => "1h",
            ChartWindow::Hour6 => "6h",
        }
    }

    pub fn longer(self) -> Self {
        match self {
            ChartWindow::Min15 => ChartWindow::Hour1,
            _ => ChartWindow::Hour6,
        }
    }

    pub fn shorter(self) -> Self {
        match self {
            ChartWindow::Hour6 => ChartWindow::Hour1,
            _ => ChartWindow::Min15,
        }
    }
}

/// What a confirmed dialog does.
#[derive(Clone, Debug, PartialEq)]
pub enum Confirmed {
    Request(Request),
    SetMode(Mode),
    Resume,
    ClusterPause(Option<std::time::Duration>),
}

/// The confirmation dialog: titled "Confirm", `y`/`n`, Cancel by default.
#[derive(Clone, Debug, PartialEq)]
pub struct Confirm {
    pub question: String,
    pub details: Vec<String>,
    pub on_yes: Confirmed,
    /// The highlighted button; starts on Cancel.
    pub ok_selected: bool,
}

/// What takes the keyboard, over the panels: at most one at a time, so
/// which one wins is never a question (opening one replaces the last; the
/// reconciliation view closes for the dialog its Enter opens).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Overlay {
    #[default]
    None,
    /// Typing the workers filter (`/`): every key goes to it.
    FilterInput,
    /// The reconciliation view (`R`), with its selected finding.
    Reconcile {
        selected: usize,
    },
    /// The help generated from the keymap (`?`): any key closes it.
    Help,
    Confirm(Confirm),
    /// One worker's detail (`d`): the row it was opened on.
    Node {
        name: String,
        instance_id: String,
    },
}

impl Overlay {
    pub fn confirm(&self) -> Option<&Confirm> {
        match self {
            Overlay::Confirm(c) => Some(c),
            _ => None,
        }
    }

    pub fn is_filter_input(&self) -> bool {
        matches!(self, Overlay::FilterInput)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub text: String,
    pub error: bool,
    pub at: Timestamp,
}

pub struct App {
    pub cluster: String,
    pub demo: bool,
    pub read_only: bool,
    pub keymap: Keymap,
    pub settings: Settings,
    pub now: Timestamp,
    pub snapshot: Option<Snapshot>,
    /// While frozen, new snapshots wait here.
    pub held_back: Option<Snapshot>,
    pub frozen: bool,
    pub cpu: History,
    pub pending: History,
    pub window: ChartWindow,
    pub focus: Focus,
    pub selected: Option<String>,
    pub sort: SortColumn,
    pub sort_reverse: bool,
    pub filter: String,
    pub overlay: Overlay,
    pub notice: Option<Notice>,
    /// The last attempt to start or advance an operation that failed, and
    /// when; cleared by the next attempt that does not. Kept across ticks
    /// so a refusal cannot scroll out of sight.
    pub last_failure: Option<(Timestamp, crate::engine::ExecFailure)>,
    /// Scroll position of the log pane (tui-logger keeps it behind a lock).
    pub log_state: tui_logger::TuiWidgetState,
    pub light_theme: bool,
    pub quit: bool,
}

/// History kept per chart: 24 h of 15-second samples.
pub const HISTORY_SAMPLES: usize = 24 * 3600 / 15;

impl App {
    pub fn new(
        cluster: String,
        demo: bool,
        read_only: bool,
        keymap: Keymap,
        settings: Settings,
        now: Timestamp,
    ) -> App {
        App {
            cluster,
            demo,
            read_only,
            keymap,
            settings,
            now,
            snapshot: None,
            held_back: None,
            frozen: false,
            cpu: History::new(HISTORY_SAMPLES),
            pending: History::new(HISTORY_SAMPLES),
            window: ChartWindow::Min15,
            focus: Focus::Workers,
            selected: None,
            sort: SortColumn::Name,
            sort_reverse: false,
            filter: String::new(),
            overlay: Overlay::None,
            notice: None,
            last_failure: None,
            log_state: tui_logger::TuiWidgetState::new(),
            light_theme: false,
            quit: false,
        }
    }

    pub fn mode(&self) -> Mode {
        if self.read_only {
            return Mode::ReadOnly;
        }
        self.snapshot.as_ref().map_or(Mode::Supervised, |s| s.mode)
    }

    pub fn paused(&self) -> bool {
        self.snapshot.as_ref().is_some_and(|s| s.paused)
    }
}

#[cfg(test)]
mod tests;
