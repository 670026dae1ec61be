//! The scaling engine: pure decisions and protocol state machines.
//!
//! Nothing in this module performs IO or reads a clock; every function takes
//! `now` (and, for leases, the monotonic time) as an argument. That is what
//! makes the simulator and the table-driven tests exact.

pub mod boot;
pub mod candidates;
pub mod circuit;
pub mod cpu_coverage;
pub mod decision;
pub mod drain_rules;
pub mod events;
pub mod forecast;
pub mod id_map;
pub mod latency;
pub mod lock;
pub mod mode;
pub mod observation;
pub mod operation;
pub mod policy;
pub mod policy_memory;
pub mod reconcile;
pub mod report;
pub mod request;
pub mod sanity;
mod scale_down;
pub mod settings;
pub mod sizing;

pub use decision::{Action, Decision, Reason, Refusal, ScaleUpHeld, Standing, StandingKind};
pub use lock::HeldLease;
pub use mode::Mode;
pub use observation::{ClusterView, Observation};
pub use operation::{AfterTerminate, Effect, EffectResult, Intent, Next, OpView};
pub use policy::{PolicyMemory, Request, decide, intent_of, validate_request};
pub use report::{ExecFailure, ExecHeadline, ExecReport, TickReport};
pub use scale_down::node_standing;
pub use settings::{DrainRules, LeaseRules, Policy, Settings};

// Fixtures for unit tests here and in the main crate (its dev-dependency
// on this crate turns the feature on; a release build never has it).
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
#[cfg(test)]
mod tests;
