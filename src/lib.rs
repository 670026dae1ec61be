//! k3s-autoscaler: an operations console and scaling engine for K3s
//! clusters whose workers are plain EC2 instances.
//!
//! # Architecture (docs/architecture.md §1)
//!
//! ```text
//!  Prometheus ─ MetricsSource ┐
//!  kube API   ─ ClusterApi    ├─ observe ─▶ engine (pure) ─ steps ─▶ executor ─▶ same ports
//!  EC2        ─ CloudApi      │
//!  DynamoDB   ─ StateStore    ┘
//! ```
//!
//! * [`engine`] decides and never performs IO; `now` is always an argument.
//! * [`ports`] are the traits (one per outside system) and the domain types.
//! * [`sim`] is one seeded simulated world implementing every port; it backs
//!   `--demo`, the simulation tests and the benchmarks.
//! * [`runtime`] is the only layer with IO: observation, the lock, the
//!   executor of operation steps, the headless loop and shutdown. It never
//!   imports the simulator.
//! * [`harness`] assembles the simulator with the runtime (`--demo`,
//!   `--compare`; with the `harness` feature, chaos and the fuzz entries).
//! * [`config`] reads and validates the TOML configuration; [`cli`] parses
//!   the command line and dispatches; [`exit`] is how the process ends.
//!
//! [`engine`] and [`ports`] are the `k3s-autoscaler-core` crate
//! (`crates/core`), which depends on nothing that performs IO, so their
//! purity is a build fact; `layering.rs` tests the other arrows.
//!
//! Allowed dependencies (docs/architecture.md, "Who may use whom"): `cli`
//! → `runtime`, `harness`, `config`, `sim` (scenario names, the demo
//! world); `harness` → `runtime`, `sim`; `runtime` → `engine`, `ports`,
//! `rng`; `engine` → `ports`; `sim` → `ports`, `rng`
//! (and the engine's pure drain rules, to check invariants the same way).

// The engine and the ports are the `k3s-autoscaler-core` crate, which has
// no IO dependency; re-exported so every path reads `crate::engine::…`.
pub use k3s_autoscaler_core::{engine, ports};

pub mod adapters;
pub mod app;
pub mod cli;
pub mod config;
pub mod exit;
pub mod harness;
#[cfg(test)]
mod layering;
pub mod rng;
pub mod runtime;
pub mod sim;
pub mod ui;
