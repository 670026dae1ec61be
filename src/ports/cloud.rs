//! `CloudApi`: the EC2 fleet in domain terms.

use super::error::PortResult;
use super::time::Timestamp;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub const TAG_CLUSTER: &str = "k3s-autoscaler/cluster";
pub const TAG_ROLE: &str = "k3s-autoscaler/role";
pub const TAG_OP_ID: &str = "k3s-autoscaler/op-id";
pub const ROLE_WORKER: &str = "worker";

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
    Stopping,
    Stopped,
}

impl InstanceState {
    /// Pending and running instances are billed and count towards `max_workers`.
    pub fn is_live(self) -> bool {
        matches!(self, InstanceState::Pending | InstanceState::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub id: String,
    pub state: InstanceState,
    pub instance_type: String,
    pub zone: String,
    pub private_ip: Option<String>,
    pub launched_at: Timestamp,
    /// The `k3s-autoscaler/op-id` tag: which operation launched it.
    pub op_id: Option<String>,
    /// Carries both managed tags (cluster and role=worker): the only
    /// instances this tool may ever terminate.
    pub managed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchRequest {
    pub op_id: String,
    /// EC2 idempotency token: a retry with the same token never launches twice.
    pub client_token: String,
    pub count: u32,
}

#[async_trait]
pub trait CloudApi: Send + Sync {
    /// Managed workers in pending or running state.
    async fn managed_instances(&self) -> PortResult<Vec<Instance>>;
    /// Every instance tagged with this op id, in any state (terminated too:
    /// a launch is never repeated for an op whose instances died).
    async fn instances_for_op(&self, op_id: &str) -> PortResult<Vec<Instance>>;
    /// The K3s server, found by its configured tag.
    async fn master(&self) -> PortResult<Option<Instance>>;
    /// Launch `count` workers for an operation. Idempotent per op id: if
    /// instances tagged with the op id exist they are returned instead.
    async fn launch(&self, request: &LaunchRequest) -> PortResult<Vec<Instance>>;
    /// Terminate managed instances. Refused, before any call, if any id is
    /// not a managed worker (`NotFound` if it does not exist).
    async fn terminate(&self, ids: &[String]) -> PortResult<()>;
    /// The instance's serial console output, decoded, when the cloud has
    /// one (EC2 keeps the last 64 KiB). `None` when there is none yet.
    async fn console_output(&self, _id: &str) -> PortResult<Option<String>> {
        Ok(None)
    }
}
