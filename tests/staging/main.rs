//! The real binary on the loopback staging stack (DynamoDB Local, moto,
//! the simulator's Kubernetes façade, Debian's Prometheus): end to end,
//! eight engines racing, the blast-radius stop, the engine as a service,
//! secrets and read-only, the AWS commands, crash recovery at every step
//! boundary (with the `failpoints` feature) and the systemd unit.

#[path = "../support/mod.rs"]
mod support;

mod aws_commands;
// The longest test (several flash-sale spikes in real time): libtest
// starts tests in name order, so its name puts it first of the stack
// tests and the others run beside it.
mod concurrent_engines;
// kill -9 at a step boundary needs the binary built with failpoints;
// `console/feature_gate.rs` fails under the test script when it is off.
#[cfg(feature = "failpoints")]
mod crash_recovery;
mod secrets_and_read_only;
mod service_unit;
mod staging_blast_radius;
mod staging_e2e;
mod staging_service;
