//! Adapters: each translates one port to a real system and decides nothing
//! (docs/architecture.md §1).

pub mod aws;
pub mod dynamodb;
pub mod dynamodb_items;
pub mod ec2;
pub mod kube;
pub mod kube_convert;
pub mod kube_events;
pub mod kube_watch;
pub mod prometheus;
pub mod prometheus_response;
pub mod system_clock;
pub mod user_data;

pub use system_clock::SystemClock;
