//! The engine's knobs, in engine terms. The runtime builds them from the
//! config; the engine never sees files or TOML.

pub use super::circuit::CircuitRules;
pub use super::sanity::SanityRules;
use crate::ports::Resources;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub cpu_up_percent: f64,
    pub cpu_up_for: Duration,
    pub pending_for: Duration,
    pub cpu_down_percent: f64,
    pub idle_for: Duration,
    pub cpu_target_percent: f64,
    pub min_workers: u32,
    pub max_workers: u32,
    pub scale_up_cooldown: Duration,
    pub scale_down_cooldown: Duration,
    pub max_scale_up_batch: u32,
    /// Predictive pre-warm (`engine/forecast.rs`): off by default.
    pub predictive: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DrainRules {
    pub timeout: Duration,
    pub evict_statefulsets: bool,
    pub delete_emptydir_data: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LeaseRules {
    pub lease: Duration,
    pub skew_margin: Duration,
}

/// Where workers are launched: instance types in fallback order, and the
/// subnets (one per availability zone) they are balanced across.
#[derive(Clone, Debug, PartialEq)]
pub struct LaunchRules {
    pub instance_types: Vec<String>,
    pub subnets: Vec<String>,
    /// The K3s release workers install; `None`: the server's own.
    pub k3s_version: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub policy: Policy,
    pub drain: DrainRules,
    pub lease: LeaseRules,
    pub join_timeout: Duration,
    /// The tick interval: how often the engine decides.
    pub interval: Duration,
    pub launch: LaunchRules,
    /// A metric sample older than this is Unknown.
    pub max_staleness: Duration,
    /// What a new worker offers when no existing worker can serve as the
    /// template (an empty cluster): used to size a scale-up for pending pods.
    pub fallback_allocatable: Resources,
    /// When the view is too implausible to act on destructively.
    pub sanity: SanityRules,
    /// When failures in a row stop the engine (engine/circuit.rs).
    pub circuit: CircuitRules,
}

impl Settings {
    /// How long an intent stays good: two ticks and a lease. An intent
    /// (launch, cordon, terminate) not acted on within it was decided on a
    /// world that has moved; it is aborted and decided again, never
    /// executed by the next engine hours later.
    pub fn intent_ttl(&self) -> Duration {
        self.interval * 2 + self.lease.lease
    }
}

impl Default for Settings {
    /// The defaults of docs/architecture.md §2–§4; three of them were tuned against the baselines
    /// (README "Performance"): scale down below 45 % (not 30 %), pending
    /// pods count after 5 s (the design's 3 min, then 1 min: README
    /// "The pending window"), next scale-up 1 minute after a verified one
    /// (not 3). The config's defaults are the same numbers.
    fn default() -> Self {
        Settings {
            policy: Policy {
                cpu_up_percent: 70.0,
                cpu_up_for: Duration::ZERO,
                pending_for: Duration::from_secs(5),
                cpu_down_percent: 45.0,
                idle_for: Duration::from_secs(600),
                cpu_target_percent: 60.0,
                min_workers: 2,
                max_workers: 10,
                scale_up_cooldown: Duration::from_secs(60),
                scale_down_cooldown: Duration::from_secs(600),
                max_scale_up_batch: 3,
                predictive: false,
            },
            drain: DrainRules {
                timeout: Duration::from_secs(300),
                evict_statefulsets: false,
                delete_emptydir_data: false,
            },
            lease: LeaseRules {
                lease: Duration::from_secs(60),
                skew_margin: Duration::from_secs(5),
            },
            join_timeout: Duration::from_secs(600),
            interval: Duration::from_secs(15),
            launch: LaunchRules {
                instance_types: vec!["t3.large".into(), "t3a.large".into(), "m5.large".into()],
                subnets: Vec::new(),
                k3s_version: None,
            },
            max_staleness: Duration::from_secs(120),
            fallback_allocatable: Resources::new(1930, 7 * 1024 * 1024 * 1024),
            sanity: SanityRules::default(),
            circuit: CircuitRules::default(),
        }
    }
}
