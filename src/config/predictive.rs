//! `[policy.predictive]`: launch ahead of a load the history says repeats
//! (docs/architecture.md §2, "Predictive pre-warm"; `engine/forecast.rs`).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PredictiveConfig {
    /// Off by default: a forecast launches workers no pod has asked for yet.
    pub enabled: bool,
}
