//! Ports: one trait per outside system, speaking domain types (docs/architecture.md §1).
//! The engine depends on the types here and nothing else; adapters and the
//! simulator implement the traits.

pub mod clock;
pub mod cloud;
pub mod cluster;
pub mod error;
pub mod events;
pub mod label_map;
pub mod label_selector;
pub mod metrics;
pub mod state;
pub mod time;

pub use clock::Clock;
pub use cloud::{CloudApi, Instance, InstanceState, LaunchRequest};
pub use cluster::{
    ClusterApi, EvictionOutcome, Node, ObservedCluster, Pdb, Pod, PodFields, PodPhase, PodRef,
    Resources,
};
pub use error::{PortError, PortResult};
pub use events::{ClusterEvent, EventObject, EventSeries, EventType};
pub use label_map::{LabelMap, Labels};
pub use metrics::{MetricsSource, Reading, Sample, Signal};
pub use state::{
    AcquireRequest, BreakGlass, ClockSample, LaunchPlan, LaunchTarget, Lease, LockRecord, OpKind,
    OpPhase, OpRecord, OpStep, Operation, Origin, Pause, StateSnapshot, StateStore, Trouble,
    TroubleKind,
};
pub use time::{MonoTime, Timestamp, format_duration};

use std::sync::Arc;

/// Every port the runtime needs, shared behind `Arc`s so background tasks
/// can hold them.
#[derive(Clone)]
pub struct Ports {
    pub metrics: Arc<dyn MetricsSource>,
    pub cluster: Arc<dyn ClusterApi>,
    pub cloud: Arc<dyn CloudApi>,
    pub state: Arc<dyn StateStore>,
    pub clock: Arc<dyn Clock>,
}
