//! Configuration (README, "Configuration"; `config.example.toml`): TOML, every key optional with the documented
//! default, unknown keys refused, durations as strings. Every error names the
//! file and the key (and the line where the text has one) and maps to exit 2.

mod circuit;
mod duration;
pub mod ec2_limits;
mod locate;
mod notify;
mod predictive;

pub use circuit::CircuitConfig;
pub use duration::{ConfigDuration, parse_duration};
pub use notify::NotifyConfig;
pub use predictive::PredictiveConfig;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub cluster: ClusterConfig,
    pub aws: AwsConfig,
    pub dynamodb: DynamoDbConfig,
    pub ec2: Ec2Config,
    pub prometheus: PrometheusConfig,
    pub kubernetes: KubernetesConfig,
    pub policy: PolicyConfig,
    pub drain: DrainConfig,
    pub lock: LockConfig,
    pub engine: EngineConfig,
    pub circuit: CircuitConfig,
    pub notify: NotifyConfig,
    pub demo: DemoConfig,
    pub ui: UiConfig,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    pub name: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig { name: "k3s".into() }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsConfig {
    pub region: Option<String>,
    pub profile: Option<String>,
    /// For emulators (moto): overrides every service endpoint.
    pub endpoint_url: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DynamoDbConfig {
    pub table: String,
}

impl Default for DynamoDbConfig {
    fn default() -> Self {
        DynamoDbConfig {
            table: "k3s-autoscaler".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ec2Config {
    pub ami: Option<String>,
    /// Tried in order when EC2 has no capacity for one.
    pub instance_types: Vec<String>,
    /// One subnet per availability zone; workers are balanced across them.
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub instance_profile: Option<String>,
    pub key_name: Option<String>,
    /// Extra tags on every launched worker.
    pub tags: BTreeMap<String, String>,
    /// `key=value` of the tag that marks the K3s server.
    pub master_tag: String,
    pub user_data_template: String,
    /// SSM Parameter Store *name* of the agent join token; the instance
    /// fetches the value at boot, the engine never reads it.
    pub join_token_parameter: String,
    /// The K3s version workers install (`v1.33.1+k3s1`). Unset: the K3s
    /// server's own version, read from the API server when a launch is
    /// planned, so a new K3s release never gives workers newer than it.
    pub k3s_version: Option<String>,
    /// The AMI has K3s baked in (binary and install script): no download at
    /// boot (`INSTALL_K3S_SKIP_DOWNLOAD=true`).
    pub k3s_preinstalled: bool,
}

impl Default for Ec2Config {
    fn default() -> Self {
        Ec2Config {
            ami: None,
            instance_types: vec!["t3.large".into(), "t3a.large".into(), "m5.large".into()],
            subnets: Vec::new(),
            security_groups: Vec::new(),
            instance_profile: None,
            key_name: None,
            tags: BTreeMap::new(),
            master_tag: "k3s-autoscaler/role=master".into(),
            user_data_template: "assets/user-data.sh.tmpl".into(),
            join_token_parameter: "/k3s/agent-token".into(),
            k3s_version: None,
            k3s_preinstalled: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusConfig {
    pub url: String,
    pub timeout: ConfigDuration,
    pub max_staleness: ConfigDuration,
    pub cpu_query: String,
    /// Per-node CPU % for the workers table, by the `node` label.
    pub node_cpu_query: String,
    pub unschedulable_query: String,
    pub ready_workers_query: String,
    /// Name of an environment variable holding a bearer token (never the token).
    pub bearer_token_env: Option<String>,
    pub basic_auth_user: Option<String>,
    /// Name of an environment variable holding the basic-auth password.
    pub basic_auth_password_env: Option<String>,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        PrometheusConfig {
            url: "http://127.0.0.1:9090".into(),
            timeout: ConfigDuration::secs(5),
            max_staleness: ConfigDuration::secs(120),
            cpu_query: "100 * (1 - avg(rate(node_cpu_seconds_total{mode=\"idle\",k3s_role=\"worker\"}[2m])))".into(),
            node_cpu_query: "100 * (1 - avg by (node) (rate(node_cpu_seconds_total{mode=\"idle\",k3s_role=\"worker\"}[2m])))".into(),
            unschedulable_query: "sum(kube_pod_status_unschedulable) or vector(0)".into(),
            ready_workers_query: "sum(kube_node_status_condition{condition=\"Ready\",status=\"true\"} * on(node) group_left() kube_node_labels{label_k3s_autoscaler_role=\"worker\"})".into(),
            bearer_token_env: None,
            basic_auth_user: None,
            basic_auth_password_env: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// Path of a kubeconfig; empty means KUBECONFIG, ~/.kube/config, in-cluster.
    pub kubeconfig: Option<String>,
    pub context: Option<String>,
    /// Label selector that picks the workers this tool manages.
    pub worker_selector: String,
    /// Write Kubernetes Events (`events.k8s.io/v1`: `kubectl describe`
    /// shows why a pod did or did not trigger a scale-up, why a node went
    /// away). Needs `create` and `patch` on `events.events.k8s.io`.
    pub events: bool,
    /// Follow nodes, pods and PodDisruptionBudgets with watches (one LIST
    /// each, then changes) instead of listing the whole cluster every
    /// tick, and tick at once on a change a decision waits on. Needs
    /// `watch` beside `list` in the RBAC. `false`: three LISTs a tick.
    pub watch: bool,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            kubeconfig: None,
            context: None,
            worker_selector: "k3s-autoscaler/role=worker".into(),
            events: true,
            watch: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    pub cpu_up_percent: f64,
    pub cpu_up_for: ConfigDuration,
    pub pending_for: ConfigDuration,
    pub cpu_down_percent: f64,
    pub idle_for: ConfigDuration,
    pub cpu_target_percent: f64,
    pub min_workers: u32,
    pub max_workers: u32,
    pub scale_up_cooldown: ConfigDuration,
    pub scale_down_cooldown: ConfigDuration,
    pub max_scale_up_batch: u32,
    pub predictive: PredictiveConfig,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            cpu_up_percent: 70.0,
            cpu_up_for: ConfigDuration::secs(0),
            pending_for: ConfigDuration::secs(5),
            cpu_down_percent: 45.0,
            idle_for: ConfigDuration::secs(600),
            cpu_target_percent: 60.0,
            min_workers: 2,
            max_workers: 10,
            scale_up_cooldown: ConfigDuration::secs(60),
            scale_down_cooldown: ConfigDuration::secs(600),
            max_scale_up_batch: 3,
            predictive: PredictiveConfig::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DrainConfig {
    pub timeout: ConfigDuration,
    pub evict_statefulsets: bool,
    pub delete_emptydir_data: bool,
}

impl Default for DrainConfig {
    fn default() -> Self {
        DrainConfig {
            timeout: ConfigDuration::secs(300),
            evict_statefulsets: false,
            delete_emptydir_data: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockConfig {
    pub lease: ConfigDuration,
    pub skew_margin: ConfigDuration,
}

impl Default for LockConfig {
    fn default() -> Self {
        LockConfig {
            lease: ConfigDuration::secs(60),
            skew_margin: ConfigDuration::secs(5),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    pub interval: ConfigDuration,
    pub join_timeout: ConfigDuration,
    /// Failed attempts in a row to start or advance an operation after
    /// which `/healthz` answers 503.
    pub unhealthy_after: u32,
    /// Above this share (percent) of running managed instances without a
    /// Ready node, the view is implausible and nothing destructive runs.
    pub max_unready_percent: f64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            interval: ConfigDuration::secs(15),
            join_timeout: ConfigDuration::secs(600),
            unhealthy_after: 3,
            max_unready_percent: 45.0,
        }
    }
}

/// The embedded simulated cluster behind `--demo`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    /// Workers running when the simulation starts.
    pub initial_workers: u32,
    /// Mean time from launch to a Ready node (jittered ±30 %).
    pub boot_delay: ConfigDuration,
    /// Probability that a launched instance never joins the cluster.
    pub never_join_probability: f64,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            initial_workers: 5,
            boot_delay: ConfigDuration::secs(90),
            never_join_probability: 0.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    /// `dark` or `light`.
    pub theme: String,
    /// Key overrides: action name → key, e.g. `scale_up = "a"`.
    pub keys: BTreeMap<String, String>,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            theme: "dark".into(),
            keys: BTreeMap::new(),
        }
    }
}

/// A value that parses but cannot work (`Config::validate`): the dotted
/// key, which `Config::parse` turns into a line, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidValue {
    pub key: String,
    pub why: String,
}

/// A configuration problem, precise enough to fix without guessing.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config error in {}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, " at line {line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ", key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: None,
            message: format!("cannot read the file: {e}"),
        })?;
        Config::parse(&text, path)
    }

    /// Parse and validate config text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let error = |line, key, message| ConfigError {
            file: path.to_path_buf(),
            line,
            key,
            message,
        };
        let deserializer = toml::Deserializer::parse(text).map_err(|e| {
            let line = e.span().map(|s| locate::line_of_offset(text, s.start));
            error(
                line,
                None,
                format!("TOML syntax error: {}", e.message().trim()),
            )
        })?;
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path_text = e.path().to_string();
            let inner = e.inner();
            let message = inner.message().trim().to_string();
            let key = key_from_error(&path_text, &message);
            let line = inner
                .span()
                .map(|s| locate::line_of_offset(text, s.start))
                .or_else(|| key.as_deref().and_then(|k| locate::line_of_key(text, k)));
            error(line, key, message)
        })?;
        config.validate().map_err(|InvalidValue { key, why }| {
            // A key inside a table written inline (`tags = { … }`) has no
            // line of its own: point at its parent's.
            let line = locate::line_of_key(text, &key).or_else(|| {
                key.rsplit_once('.')
                    .and_then(|(parent, _)| locate::line_of_key(text, parent))
            });
            error(line, Some(key), why)
        })?;
        Ok(config)
    }

    /// Values that parse but contradict each other or cannot work: the
    /// first offending key and why.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        let p = &self.policy;
        let bad = |key: &str, why: String| {
            Err(InvalidValue {
                key: key.to_string(),
                why,
            })
        };
        for (key, value) in [
            ("policy.cpu_up_percent", p.cpu_up_percent),
            ("policy.cpu_down_percent", p.cpu_down_percent),
            ("policy.cpu_target_percent", p.cpu_target_percent),
        ] {
            if !(value > 0.0 && value < 100.0) {
                return bad(
                    key,
                    format!("must be between 0 and 100 (exclusive), got {value}"),
                );
            }
        }
        if p.cpu_down_percent >= p.cpu_up_percent {
            return bad(
                "policy.cpu_down_percent",
                format!(
                    "must be below policy.cpu_up_percent ({} >= {}), or every change would trigger the opposite one",
                    p.cpu_down_percent, p.cpu_up_percent
                ),
            );
        }
        if p.cpu_target_percent <= p.cpu_down_percent || p.cpu_target_percent > p.cpu_up_percent {
            return bad(
                "policy.cpu_target_percent",
                format!(
                    "must be above policy.cpu_down_percent ({}) and at most policy.cpu_up_percent ({}), got {}",
                    p.cpu_down_percent, p.cpu_up_percent, p.cpu_target_percent
                ),
            );
        }
        if p.min_workers > p.max_workers {
            return bad(
                "policy.min_workers",
                format!(
                    "policy.min_workers ({}) is greater than policy.max_workers ({})",
                    p.min_workers, p.max_workers
                ),
            );
        }
        if p.max_workers == 0 {
            return bad("policy.max_workers", "must be at least 1".into());
        }
        if p.max_scale_up_batch == 0 {
            return bad("policy.max_scale_up_batch", "must be at least 1".into());
        }
        // `policy.pending_for` may be 0, as the Cluster Autoscaler's
        // `new-pod-scale-up-delay` is by default: a pod counts at the first
        // tick after its PodScheduled=False transition.
        for (key, value) in [
            ("policy.idle_for", p.idle_for),
            ("policy.scale_up_cooldown", p.scale_up_cooldown),
            ("policy.scale_down_cooldown", p.scale_down_cooldown),
            ("drain.timeout", self.drain.timeout),
            ("lock.lease", self.lock.lease),
            ("lock.skew_margin", self.lock.skew_margin),
            ("engine.interval", self.engine.interval),
            ("engine.join_timeout", self.engine.join_timeout),
            ("prometheus.timeout", self.prometheus.timeout),
            ("prometheus.max_staleness", self.prometheus.max_staleness),
            ("demo.boot_delay", self.demo.boot_delay),
        ] {
            if value.get().is_zero() {
                return bad(key, "must be greater than zero".into());
            }
        }
        let least = self.lock.skew_margin.get() + crate::engine::lock::EFFECT_CALL_CEILING;
        if self.lock.lease.get() <= least {
            return bad(
                "lock.lease",
                format!(
                    "must be longer than lock.skew_margin + {} (the longest side-effect call), or a holder could never act",
                    crate::ports::format_duration(crate::engine::lock::EFFECT_CALL_CEILING)
                ),
            );
        }
        if self.lock.skew_margin.get() * 3 >= self.lock.lease.get() {
            return bad(
                "lock.skew_margin",
                format!(
                    "must be less than a third of lock.lease ({}), or a holder would have no time to act",
                    crate::ports::format_duration(self.lock.lease.get())
                ),
            );
        }
        if let Some(v) = &self.ec2.k3s_version
            && !crate::engine::operation::is_k3s_version(v)
        {
            return bad(
                "ec2.k3s_version",
                format!("\"{v}\" is not a K3s release like \"v1.33.1+k3s1\""),
            );
        }
        if self.engine.unhealthy_after == 0 {
            return bad("engine.unhealthy_after", "must be at least 1".into());
        }
        let unready = self.engine.max_unready_percent;
        if !(unready.is_finite() && (0.0..=100.0).contains(&unready)) {
            return bad(
                "engine.max_unready_percent",
                format!("must be a percentage from 0 to 100, not {unready}"),
            );
        }
        self.circuit.validate(self.engine.join_timeout.get())?;
        self.notify.validate()?;
        if self.cluster.name.trim().is_empty() {
            return bad("cluster.name", "must not be empty".into());
        }
        if !(0.0..=1.0).contains(&self.demo.never_join_probability) {
            return bad(
                "demo.never_join_probability",
                format!(
                    "must be between 0 and 1, got {}",
                    self.demo.never_join_probability
                ),
            );
        }
        if self.demo.initial_workers > p.max_workers.max(1) * 100 {
            return bad("demo.initial_workers", "is unreasonably large".into());
        }
        if self.ec2.instance_types.is_empty() {
            return bad(
                "ec2.instance_types",
                "must list at least one instance type".into(),
            );
        }
        if !matches!(self.ui.theme.as_str(), "dark" | "light") {
            return bad(
                "ui.theme",
                format!("must be \"dark\" or \"light\", got \"{}\"", self.ui.theme),
            );
        }
        if self
            .ec2
            .master_tag
            .split_once('=')
            .is_none_or(|(k, _)| k.is_empty())
        {
            return bad("ec2.master_tag", "must be \"key=value\"".into());
        }
        if self.kubernetes.worker_selector.trim().is_empty() {
            return bad(
                "kubernetes.worker_selector",
                "must not be empty: an empty selector picks every node, the K3s server's too"
                    .into(),
            );
        }
        if let Err(why) = crate::ports::label_selector::parse(&self.kubernetes.worker_selector) {
            return bad(
                "kubernetes.worker_selector",
                format!("the API server would refuse it: {why}"),
            );
        }
        let table = &self.dynamodb.table;
        let legal = table
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        // A table ARN is accepted where a name is (another account's table).
        let arn = table.starts_with("arn:") && table.contains(":table/");
        if !arn && (!(3..=255).contains(&table.chars().count()) || !legal) {
            return bad(
                "dynamodb.table",
                format!(
                    "\"{table}\" is not a DynamoDB table name (3 to 255 characters of a-z, A-Z, 0-9, _, . and -) nor a table ARN"
                ),
            );
        }
        ec2_limits::check_tags(&self.ec2, &self.cluster.name)
    }
}

/// The dotted key an error is about: serde's path, plus the offending name
/// for "unknown field" errors (whose path stops at the enclosing table).
fn key_from_error(path: &str, message: &str) -> Option<String> {
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_string());
    let path = if path == "." || path.is_empty() {
        None
    } else {
        Some(path.to_string())
    };
    match (path, unknown) {
        (Some(p), Some(u)) if !p.ends_with(&u) => Some(format!("{p}.{u}")),
        (None, Some(u)) => Some(u),
        (p, _) => p,
    }
}

#[cfg(test)]
mod tests;
