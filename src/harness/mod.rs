//! The simulation harness: what assembles the simulator (`crate::sim`)
//! with the runtime for `--demo` and `--compare`, and, built only with the
//! `harness` feature (tests, the chaos example, the fuzz targets), the
//! chaos runner and the fuzz entry points. The runtime never imports the
//! simulator; this layer does, so the product's IO layer stays the one a
//! real cluster runs.

#[cfg(feature = "harness")]
pub mod chaos;
pub mod compare;
pub mod demo;
#[cfg(feature = "harness")]
#[doc(hidden)]
pub mod fuzz_entry;
pub mod oracle;
