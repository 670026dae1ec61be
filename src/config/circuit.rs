//! `[circuit]`: when failures in a row stop the engine
//! (crates/core/src/engine/circuit.rs, docs/architecture.md §2).

use super::{ConfigDuration, InvalidValue};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitConfig {
    pub enabled: bool,
    /// Open after this many launched instances never joined within
    /// `window` (0: not on this count).
    pub never_joined: u32,
    /// Open after this many operations failed or were aborted within
    /// `window` (0: not on this count).
    pub failed_operations: u32,
    pub window: ConfigDuration,
    /// The pause lasts this long unless the operator resumes sooner.
    pub open_for: ConfigDuration,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        CircuitConfig {
            enabled: true,
            never_joined: 3,
            failed_operations: 5,
            window: ConfigDuration::secs(3600),
            open_for: ConfigDuration::secs(24 * 3600),
        }
    }
}

impl CircuitConfig {
    /// `join_timeout`: a window shorter than two of them could never hold
    /// two launches that never joined one after the other.
    pub(super) fn validate(&self, join_timeout: std::time::Duration) -> Result<(), InvalidValue> {
        let bad = |key: &str, why: &str| {
            Err(InvalidValue {
                key: key.to_string(),
                why: why.to_string(),
            })
        };
        if !self.enabled {
            return Ok(());
        }
        if self.never_joined == 0 && self.failed_operations == 0 {
            return bad(
                "circuit.never_joined",
                "and circuit.failed_operations are both 0, so the circuit could never open; set enabled = false to turn it off",
            );
        }
        let most = crate::engine::circuit::KEPT_PER_COUNT as u32;
        for (key, value) in [
            ("circuit.never_joined", self.never_joined),
            ("circuit.failed_operations", self.failed_operations),
        ] {
            if value > most {
                return bad(
                    key,
                    &format!("must be at most {most} (the history keeps that many), got {value}"),
                );
            }
        }
        if self.window.get().is_zero() {
            return bad("circuit.window", "must be greater than zero");
        }
        if self.never_joined > 1 && self.window.get() < join_timeout * 2 {
            return bad(
                "circuit.window",
                &format!(
                    "must be at least twice engine.join_timeout ({}), or launches that never join one after the other could never be counted together",
                    crate::ports::format_duration(join_timeout)
                ),
            );
        }
        if self.open_for.get().is_zero() {
            return bad("circuit.open_for", "must be greater than zero");
        }
        Ok(())
    }
}
