//! Each port against its real peer and against the simulator: the
//! conformance suites (one case list, run on every backend), the
//! Kubernetes façade's fidelity to kube-apiserver, concurrency on AWS's
//! emulators, and the Prometheus adapter against hostile answers.
//!
//! One test binary per area, not per file: each binary links the AWS SDK
//! and kube, and on two cores the links, not the tests, were the cost.

#[path = "../support/mod.rs"]
mod support;

// First: the suites below expand its macro.
#[macro_use]
mod conformance;

mod aws_concurrency;
mod conformance_cloud;
mod conformance_cluster;
mod conformance_metrics;
mod conformance_state;
mod ec2_adapter_on_moto;
mod facade_events;
mod facade_evictions;
mod facade_fidelity;
mod facade_lists;
mod facade_watch;
mod kube_watch;
mod prometheus_adversarial;
mod prometheus_credentials;
