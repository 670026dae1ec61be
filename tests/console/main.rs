//! The console and the engine on the simulated cluster: screens against
//! snapshots, the real binary under tmux and on its command line,
//! reconciliation, read-only's zero mutating calls, the engine and lock
//! protocol on the simulator, and the check that the test command builds
//! every feature-gated test.

#[path = "../support/mod.rs"]
mod support;

mod boot_timelines;
mod circuit_breaker;
mod cli;
mod console_log_pane;
mod console_snapshots;
mod console_tmux;
mod engine_on_sim;
mod feature_gate;
mod kube_events;
mod notifications;
mod read_only_recorder;
mod reconciliation;
mod wakes;
