//! The runtime: the only layer with IO. It wires ports to the engine, runs
//! ticks, performs operation steps under the lock, and handles shutdown.

pub mod backends;
pub mod check;
pub mod commands;
pub mod console;
pub mod console_tails;
mod effects;
pub mod engine_loop;
pub mod events;
pub mod executor;
pub mod failpoint;
pub mod headless;
pub mod ids;
pub mod lease;
pub mod logging;
pub mod malloc;
pub mod metrics;
pub mod notify;
pub mod observe;
mod op_reads;
pub mod pause;
pub mod settings;
pub mod shutdown;
pub mod status;
pub mod status_json;
pub mod terminal;

pub use crate::engine::Mode;
pub use crate::engine::TickReport;
pub use engine_loop::Engine;
pub use shutdown::Shutdown;
