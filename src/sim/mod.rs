//! The embedded simulated cluster: one seeded world that implements every
//! port (docs/architecture.md §1). It backs `--demo`, the simulation tests and the
//! benchmarks.

pub mod accounting;
pub mod clock;
pub mod events;
pub mod facade;
pub mod fleet;
pub mod invariants;
pub mod lock_table;
pub mod ports;
/// The seeded generator every simulated draw comes from (`crate::rng`).
pub use crate::rng;
pub mod scenario;
pub mod workload;
pub mod world;

pub use accounting::Summary;
pub use clock::SimClock;
pub use ports::SimPorts;
pub use scenario::{SCENARIO_NAMES, ScenarioKind};
pub use world::{SIM_EPOCH, SimSettings, World};

/// The K3s release the simulated server runs (its `/version`).
pub const K3S_VERSION: &str = "v1.33.1+k3s1";
#[cfg(test)]
mod checker_tests;
