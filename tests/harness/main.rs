//! The test harness's own tests (`--features harness`, Cargo.toml's
//! `required-features`): seeded chaos with every fault kind and the
//! negative controls, and hostile input (property tests and the committed
//! fuzz seeds).

mod chaos;
mod hostile_input;
