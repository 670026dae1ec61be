//! The core of k3s-autoscaler: the pure scaling engine ([`engine`]) and the
//! ports it decides between ([`ports`]: one trait per outside system, in
//! domain types).
//!
//! A crate of its own so that the architecture's first rule is a build
//! fact (docs/architecture.md §1): its dependencies are `async-trait`,
//! `serde` and `thiserror`, so nothing here can open a socket, spawn a
//! task or sleep, and nothing here can name the runtime, the adapters, the
//! simulator or the console. What `std` alone offers for IO (the clock,
//! files, the network) a test in the main crate (`src/layering.rs`) keeps
//! out. The `k3s-autoscaler` crate
//! re-exports both modules under the same paths.

pub mod engine;
pub mod ports;
