//! Entry points for fuzzing hostile input: each takes arbitrary
//! bytes and must return, whatever they are. Used by the cargo-fuzz targets
//! in `fuzz/`, by the property tests, and to replay the fuzz corpus in CI.

use crate::adapters::{kube_convert, prometheus_response};
use crate::config::{Config, parse_duration};
use std::path::Path;

/// The config parser: any text is a config or an error naming the file.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = Config::parse(text, Path::new("fuzz.toml")) {
            assert!(e.to_string().contains("fuzz.toml"));
        }
        let _ = parse_duration(text);
    }
}

/// A Prometheus API answer: samples or an error, never a panic.
pub fn prometheus(data: &[u8]) {
    let _ = prometheus_response::parse(data);
}

/// Kubernetes objects as JSON: whatever deserializes is converted (or
/// refused) without a panic; quantities of any shape parse or do not.
pub fn kube_objects(data: &[u8]) {
    use k8s_openapi::api::core::v1::{Node, Pod};
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    if let Ok(node) = serde_json::from_slice::<Node>(data) {
        let _ = kube_convert::node(&node);
    }
    if let Ok(pod) = serde_json::from_slice::<Pod>(data) {
        let _ = kube_convert::pod(&pod);
    }
    if let Ok(pdb) = serde_json::from_slice::<PodDisruptionBudget>(data) {
        let _ = kube_convert::pdb(&pdb);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = kube_convert::cpu_millis(text);
        let _ = kube_convert::bytes(text);
        let _ = kube_convert::instance_id(Some(text), text);
        let _ = crate::ports::label_selector::parse(text);
    }
}
