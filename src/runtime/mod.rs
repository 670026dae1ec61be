//! The runtime: the only layer with IO. It wires ports to the engine, runs
//! ticks, performs operation steps under the lock, and handles shutdown.

pub mod backends;
pub mod check;
pub mod commands;
pub mod console;
pub mod demo;
pub mod engine_loop;
pub mod executor;
pub mod headless;
pub mod ids;
pub mod lease;
pub mod logging;
pub mod observe;
pub mod settings;
pub mod shutdown;
pub mod terminal;

pub use crate::engine::Mode;
pub use crate::engine::TickReport;
pub use engine_loop::Engine;
pub use shutdown::Shutdown;
