//! `MetricsSource`: the cluster's load as measured by Prometheus.

use super::error::PortResult;
use super::time::Timestamp;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Average CPU over workers only, in percent.
    WorkerCpu,
    /// Pods unschedulable right now (for graphs; the policy reads pods).
    UnschedulablePods,
    /// Ready workers as Prometheus sees them.
    ReadyWorkers,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::WorkerCpu => "worker CPU",
            Signal::UnschedulablePods => "unschedulable pods",
            Signal::ReadyWorkers => "ready workers",
        }
    }
}

/// A measurement or the reason there is none. Unknown is never replaced by
/// a number: the engine holds when it does not know.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Reading {
    Known { value: f64, at: Timestamp },
    Unknown { reason: String },
}

impl Reading {
    pub fn unknown(reason: impl Into<String>) -> Self {
        Reading::Unknown {
            reason: reason.into(),
        }
    }

    /// Known, finite and no older than `max_age` at `now`; otherwise Unknown
    /// with the reason. The engine applies this on top of the adapter's own checks.
    pub fn checked(&self, now: Timestamp, max_age: Duration) -> Reading {
        match self {
            Reading::Known { value, .. } if !value.is_finite() => {
                Reading::unknown(format!("value is {value}"))
            }
            Reading::Known { at, .. } if now.since(*at) > max_age => Reading::unknown(format!(
                "stale: sample is {} old (max {})",
                super::time::format_duration(now.since(*at)),
                super::time::format_duration(max_age)
            )),
            other => other.clone(),
        }
    }

    pub fn value(&self) -> Option<f64> {
        match self {
            Reading::Known { value, .. } => Some(*value),
            Reading::Unknown { .. } => None,
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub at: Timestamp,
    pub value: f64,
}

#[async_trait]
pub trait MetricsSource: Send + Sync {
    async fn instant(&self, signal: Signal) -> Reading;
    /// CPU percent of each worker node right now, by node name (for the
    /// workers table; the policy uses the average).
    async fn node_cpu(&self) -> PortResult<BTreeMap<String, f64>>;
    /// Samples between `start` and `end` every `step`, for charts.
    async fn range(
        &self,
        signal: Signal,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> PortResult<Vec<Sample>>;
}
