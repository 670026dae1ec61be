//! How the engine's decisions are used.

use serde::Serialize;

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The engine acts on its own decisions.
    Auto,
    /// The engine suggests; an operator confirms.
    Supervised,
    /// Observe and decide only: the lock is never taken, nothing changes.
    ReadOnly,
}

impl Mode {
    pub fn badge(self) -> &'static str {
        match self {
            Mode::Auto => "AUTO",
            Mode::Supervised => "MANUAL",
            Mode::ReadOnly => "READ-ONLY",
        }
    }
}
