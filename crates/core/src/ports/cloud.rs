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
    /// The subnet it runs in (EC2); `None` where the cloud has none.
    #[serde(default)]
    pub subnet: Option<String>,
    pub launched_at: Timestamp,
    /// The `k3s-autoscaler/op-id` tag: which operation launched it.
    pub op_id: Option<String>,
    /// Carries both managed tags (cluster and role=worker): the only
    /// instances this tool may ever terminate.
    pub managed: bool,
}

/// One `RunInstances`, exactly as the operation recorded it before sending
/// it: a retry re-sends the same parameters with the same token, so EC2
/// answers with the first launch instead of making a second one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchRequest {
    pub op_id: String,
    /// EC2 idempotency token (≤ 64 ASCII characters), one per attempt.
    pub client_token: String,
    pub count: u32,
    pub instance_type: String,
    /// `None`: the account's default subnet.
    pub subnet: Option<String>,
    /// The K3s server's private address, for the join script.
    pub master_address: String,
    /// The K3s release to install (`v1.33.1+k3s1`): the server's, or
    /// `ec2.k3s_version`.
    #[serde(default)]
    pub k3s_version: String,
}

#[async_trait]
pub trait CloudApi: Send + Sync {
    /// Managed workers in pending or running state.
    async fn managed_instances(&self) -> PortResult<Vec<Instance>>;
    /// Every instance tagged with this op id, in any state (terminated too:
    /// a launch is never repeated for an op whose instances died).
    async fn instances_for_op(&self, op_id: &str) -> PortResult<Vec<Instance>>;
    /// One instance by id, in any state and whatever its tags; `None` when
    /// the cloud does not know the id (EC2 forgets a terminated instance
    /// after about an hour). A destructive step that rests on "this
    /// instance is gone" asks this, not the tag-filtered list: a worker
    /// whose tags were edited, or a short page, is absent from that list
    /// and still running.
    async fn instance(&self, id: &str) -> PortResult<Option<Instance>>;
    /// The K3s server, found by its configured tag.
    async fn master(&self) -> PortResult<Option<Instance>>;
    /// Launch `count` workers as the request says, in one call. The same
    /// request again returns what the first launched (EC2's ClientToken);
    /// the same token with other parameters is `TokenReused`. No capacity
    /// for this type in this subnet (or an instance limit) is
    /// `InsufficientCapacity`: the operation's plan moves to its next
    /// target.
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
