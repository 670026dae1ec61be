//! `CloudApi` on EC2: managed workers are the instances tagged with the
//! cluster and role=worker; a launch is one `RunInstances` exactly as the
//! operation's recorded plan says (type, subnet, ClientToken), so a retry
//! is idempotent at EC2 and the engine adopts by op-id tag as well; only
//! instances with both managed tags are ever terminated.

use super::aws::port_error;
use super::user_data::{UserDataValues, base64, base64_decode, render};
use crate::config::Ec2Config;
use crate::ports::cloud::{ROLE_WORKER, TAG_CLUSTER, TAG_OP_ID, TAG_ROLE};
use crate::ports::{
    CloudApi, Instance, InstanceState, LaunchRequest, PortError, PortResult, Timestamp,
};
use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    Filter, HttpTokensState, IamInstanceProfileSpecification, InstanceMetadataEndpointState,
    InstanceMetadataOptionsRequest, InstanceStateName, InstanceType, ResourceType, Tag,
    TagSpecification,
};
use std::collections::BTreeMap;

/// Errors after which the plan's next target (subnet, then instance type)
/// is tried: no capacity for the type in that zone, the type not offered
/// there, or an account limit that another type may not hit.
const TRY_NEXT_TARGET: [&str; 5] = [
    "InsufficientInstanceCapacity",
    "Unsupported",
    "InstanceLimitExceeded",
    "VcpuLimitExceeded",
    "InsufficientFreeAddressesInSubnet",
];

pub struct Ec2Fleet {
    client: Client,
    cluster: String,
    region: String,
    config: Ec2Config,
    template: String,
}

/// A DescribeInstances filter on exact values: EC2 reads `*` and `?` in a
/// filter value as wildcards, so a cluster named `prod*` would otherwise
/// match every other cluster's workers. They (and the backslash) are
/// escaped with a backslash.
fn filter(name: &str, values: &[&str]) -> Filter {
    let mut f = Filter::builder().name(name);
    for v in values {
        f = f.values(escape_filter_value(v));
    }
    f.build()
}

fn escape_filter_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '*' | '?' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Ec2Fleet {
    pub fn new(
        sdk: &aws_config::SdkConfig,
        cluster: &str,
        config: &Ec2Config,
        template: String,
    ) -> Self {
        Ec2Fleet {
            client: Client::new(sdk),
            cluster: cluster.to_string(),
            region: sdk.region().map(|r| r.to_string()).unwrap_or_default(),
            config: config.clone(),
            template,
        }
    }

    fn to_domain(&self, i: &aws_sdk_ec2::types::Instance) -> Option<Instance> {
        let tags: BTreeMap<&str, &str> = i
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?, t.value()?)))
            .collect();
        let state = match i.state().and_then(|s| s.name())? {
            InstanceStateName::Pending => InstanceState::Pending,
            InstanceStateName::Running => InstanceState::Running,
            InstanceStateName::ShuttingDown => InstanceState::ShuttingDown,
            InstanceStateName::Terminated => InstanceState::Terminated,
            InstanceStateName::Stopping => InstanceState::Stopping,
            InstanceStateName::Stopped => InstanceState::Stopped,
            _ => return None,
        };
        Some(Instance {
            id: i.instance_id()?.to_string(),
            state,
            instance_type: i
                .instance_type()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
            zone: i
                .placement()
                .and_then(|p| p.availability_zone())
                .unwrap_or_default()
                .to_string(),
            private_ip: i.private_ip_address().map(String::from),
            subnet: i.subnet_id().map(String::from),
            launched_at: Timestamp(
                i.launch_time()
                    .and_then(|t| t.to_millis().ok())
                    .unwrap_or(0),
            ),
            op_id: tags.get(TAG_OP_ID).map(|s| s.to_string()),
            managed: tags.get(TAG_CLUSTER) == Some(&self.cluster.as_str())
                && tags.get(TAG_ROLE) == Some(&ROLE_WORKER),
        })
    }

    /// DescribeInstances with filters, every page.
    async fn describe(&self, filters: Vec<Filter>, ids: &[String]) -> PortResult<Vec<Instance>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut request = self
                .client
                .describe_instances()
                .set_filters(Some(filters.clone()));
            if ids.is_empty() {
                // Pages of EC2's largest size: a call that asks for no
                // page size may be answered slowly or not at all on a
                // big account (and MaxResults is refused beside ids).
                request = request.max_results(1000);
            } else {
                request = request.set_instance_ids(Some(ids.to_vec()));
            }
            if let Some(t) = &token {
                request = request.next_token(t);
            }
            let page = request
                .send()
                .await
                .map_err(|e| port_error("DescribeInstances", e, false))?;
            for reservation in page.reservations() {
                for i in reservation.instances() {
                    if let Some(instance) = self.to_domain(i) {
                        out.push(instance);
                    }
                }
            }
            token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(String::from);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    fn managed_filters(&self, states: &[&str]) -> Vec<Filter> {
        vec![
            filter(&format!("tag:{TAG_CLUSTER}"), &[&self.cluster]),
            filter(&format!("tag:{TAG_ROLE}"), &[ROLE_WORKER]),
            filter("instance-state-name", states),
        ]
    }

    fn tags(&self, op_id: &str) -> TagSpecification {
        let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
        // A Name of the operator's wins over ours; the three tags that
        // mark a worker as ours cannot be set in the config (refused at
        // load: config/ec2_limits.rs), and are inserted last regardless.
        let mut all: BTreeMap<&str, &str> = BTreeMap::from([("Name", "k3s-worker")]);
        all.extend(
            self.config
                .tags
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        all.insert(TAG_CLUSTER, &self.cluster);
        all.insert(TAG_ROLE, ROLE_WORKER);
        all.insert(TAG_OP_ID, op_id);
        for (k, v) in all {
            spec = spec.tags(Tag::builder().key(k).value(v).build());
        }
        spec.build()
    }
}

#[async_trait]
impl CloudApi for Ec2Fleet {
    async fn managed_instances(&self) -> PortResult<Vec<Instance>> {
        // The filters select; the exact tag comparison decides (a filter
        // EC2 matched loosely must not make another cluster's worker ours).
        let mut found = self
            .describe(self.managed_filters(&["pending", "running"]), &[])
            .await?;
        found.retain(|i| i.managed);
        Ok(found)
    }

    async fn instances_for_op(&self, op_id: &str) -> PortResult<Vec<Instance>> {
        let filters = vec![
            filter(&format!("tag:{TAG_CLUSTER}"), &[&self.cluster]),
            filter(&format!("tag:{TAG_OP_ID}"), &[op_id]),
            filter(
                "instance-state-name",
                &[
                    "pending",
                    "running",
                    "shutting-down",
                    "stopping",
                    "stopped",
                    "terminated",
                ],
            ),
        ];
        self.describe(filters, &[]).await
    }

    async fn instance(&self, id: &str) -> PortResult<Option<Instance>> {
        // By id and with no filter: EC2 answers for any state, and a
        // NotFound for an id is "unknown to EC2", not a failure. An
        // instance EC2 describes in a form this adapter cannot read is an
        // error, never `None`: the caller would take it for gone.
        let page = match self
            .client
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
        {
            Ok(page) => page,
            Err(e) => {
                return match port_error("DescribeInstances", e, false) {
                    PortError::NotFound(_) => Ok(None),
                    other => Err(other),
                };
            }
        };
        let Some(raw) = page
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find(|i| i.instance_id() == Some(id))
        else {
            return Ok(None);
        };
        self.to_domain(raw).map(Some).ok_or_else(|| {
            PortError::Invalid(format!(
                "DescribeInstances answered for {id} in a form not understood (state {:?})",
                raw.state().and_then(|s| s.name())
            ))
        })
    }

    async fn master(&self) -> PortResult<Option<Instance>> {
        let (key, value) = self
            .config
            .master_tag
            .split_once('=')
            .ok_or_else(|| PortError::Invalid("ec2.master_tag must be key=value".into()))?;
        let mut found: Vec<Instance> = self
            .describe(
                vec![
                    filter(&format!("tag:{key}"), &[value]),
                    filter("instance-state-name", &["running"]),
                ],
                &[],
            )
            .await?;
        // More than one match is a tagging mistake; the oldest is the safest guess.
        found.sort_by_key(|i| (i.launched_at, i.id.clone()));
        Ok(found.into_iter().next())
    }

    async fn launch(&self, request: &LaunchRequest) -> PortResult<Vec<Instance>> {
        // Exactly one call, exactly as the operation recorded it: the
        // engine chose type, subnet and token, and found the server.
        let ami = self
            .config
            .ami
            .as_deref()
            .ok_or_else(|| PortError::Invalid("ec2.ami is not set in the config".into()))?;
        let user_data = render(
            &self.template,
            &UserDataValues {
                cluster: &self.cluster,
                region: &self.region,
                master_address: &request.master_address,
                token_parameter: &self.config.join_token_parameter,
                op_id: &request.op_id,
                k3s_version: &request.k3s_version,
                k3s_skip_download: if self.config.k3s_preinstalled {
                    "true"
                } else {
                    "false"
                },
            },
        )?;
        // Checked at start-up too (runtime/backends.rs); this is the
        // backstop for values longer than the start-up check assumed.
        crate::config::ec2_limits::check_user_data(&user_data).map_err(PortError::Invalid)?;
        let count = i32::try_from(request.count)
            .map_err(|_| PortError::Invalid("launch count too large".into()))?;
        let mut run = self
            .client
            .run_instances()
            .image_id(ami)
            .instance_type(InstanceType::from(request.instance_type.as_str()))
            .min_count(count)
            .max_count(count)
            .client_token(&request.client_token)
            .metadata_options(
                InstanceMetadataOptionsRequest::builder()
                    .http_tokens(HttpTokensState::Required)
                    .http_endpoint(InstanceMetadataEndpointState::Enabled)
                    .build(),
            )
            .tag_specifications(self.tags(&request.op_id))
            .user_data(base64(user_data.as_bytes()));
        if let Some(subnet) = &request.subnet {
            run = run.subnet_id(subnet);
        }
        for group in &self.config.security_groups {
            run = run.security_group_ids(group);
        }
        if let Some(profile) = &self.config.instance_profile {
            run = run.iam_instance_profile(
                IamInstanceProfileSpecification::builder()
                    .name(profile)
                    .build(),
            );
        }
        if let Some(key) = &self.config.key_name {
            run = run.key_name(key);
        }
        match run.send().await {
            Ok(out) => Ok(out
                .instances()
                .iter()
                .filter_map(|i| self.to_domain(i))
                .collect()),
            Err(e) => {
                let code = e.code().unwrap_or("").to_string();
                let message = e.message().unwrap_or("").to_string();
                if TRY_NEXT_TARGET.contains(&code.as_str()) {
                    Err(PortError::InsufficientCapacity(format!(
                        "{code}: {message}"
                    )))
                } else if code == "IdempotentParameterMismatch"
                    || code == "IdempotentInstanceTerminated"
                {
                    // Either way the token names a launch that happened:
                    // never a fresh launch, and the op-id tag decides.
                    Err(PortError::TokenReused(format!("{code}: {message}")))
                } else {
                    Err(port_error("RunInstances", e, true))
                }
            }
        }
    }

    async fn terminate(&self, ids: &[String]) -> PortResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        // Refuse before any change unless every id is a managed worker.
        let found = match self.describe(vec![], ids).await {
            Ok(found) => found,
            Err(PortError::NotFound(why)) => {
                return Err(PortError::NotFound(format!("not terminated: {why}")));
            }
            Err(e) => return Err(e),
        };
        for id in ids {
            match found.iter().find(|i| &i.id == id) {
                Some(i) if i.managed => {}
                Some(_) => {
                    return Err(PortError::Refused(format!(
                        "{id} is not a managed worker of cluster {} (needs tags {TAG_CLUSTER}={} and {TAG_ROLE}={ROLE_WORKER})",
                        self.cluster, self.cluster
                    )));
                }
                None => return Err(PortError::NotFound(format!("{id} does not exist"))),
            }
        }
        let mut request = self.client.terminate_instances();
        for id in ids {
            request = request.instance_ids(id);
        }
        request
            .send()
            .await
            .map_err(|e| port_error("TerminateInstances", e, true))?;
        Ok(())
    }

    async fn console_output(&self, id: &str) -> PortResult<Option<String>> {
        let out = self
            .client
            .get_console_output()
            .instance_id(id)
            .send()
            .await
            .map_err(|e| port_error("GetConsoleOutput", e, false))?;
        let Some(encoded) = out.output() else {
            return Ok(None);
        };
        let bytes = base64_decode(encoded)
            .map_err(|e| PortError::Invalid(format!("GetConsoleOutput for {id}: {e}")))?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::escape_filter_value;

    #[test]
    fn filter_values_match_exactly_not_as_wildcards() {
        assert_eq!(escape_filter_value("staging"), "staging");
        assert_eq!(escape_filter_value("prod*"), "prod\\*");
        assert_eq!(escape_filter_value("a?b\\c"), "a\\?b\\\\c");
    }
}
