//! The real backends, built from the config: what runs without `--demo`.

use crate::adapters::SystemClock;
use crate::adapters::aws::{check_credentials, sdk_config};
use crate::adapters::dynamodb::DynamoStateStore;
use crate::adapters::ec2::Ec2Fleet;
use crate::adapters::kube::KubeCluster;
use crate::adapters::prometheus::PrometheusMetrics;
use crate::adapters::user_data::DEFAULT_TEMPLATE;
use crate::config::{Config, Ec2Config};
use crate::exit::Exit;
use crate::ports::{Clock, Ports};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Every real adapter. Kubernetes and Prometheus may fail to build (no
/// kubeconfig, a credential variable not set): that is kept as the reason,
/// so `status` and `check` can still report the others.
pub struct Backends {
    pub state: Arc<DynamoStateStore>,
    pub cloud: Arc<Ec2Fleet>,
    pub cluster: Result<Arc<KubeCluster>, String>,
    pub metrics: Result<Arc<PrometheusMetrics>, String>,
    pub clock: Arc<dyn Clock>,
    pub region: String,
    /// Whether the default chain (or the profile) yields credentials:
    /// "none at all" is said in those words before any AWS call fails.
    pub credentials: Result<(), String>,
    aws: crate::config::AwsConfig,
}

/// The user-data template: the configured file, resolved against the
/// config file's directory; the built-in copy when the default path is not
/// there (a binary installed anywhere can still launch).
pub fn user_data_template(ec2: &Ec2Config, config_path: Option<&Path>) -> Result<String, String> {
    let configured = PathBuf::from(&ec2.user_data_template);
    let path = match (configured.is_absolute(), config_path.and_then(Path::parent)) {
        (false, Some(dir)) => dir.join(&configured),
        _ => configured.clone(),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text),
        Err(_) if ec2.user_data_template == Ec2Config::default().user_data_template => {
            Ok(DEFAULT_TEMPLATE.to_string())
        }
        Err(e) => Err(format!(
            "cannot read ec2.user_data_template {}: {e}",
            path.display()
        )),
    }
}

/// The template rendered with the longest values a launch plausibly puts
/// in it must fit EC2's 16 KB: a template that only fails at the first
/// launch is found at start-up instead (exit 2, naming the key).
fn check_user_data_size(
    template: &str,
    config: &Config,
    config_path: Option<&Path>,
    region: &str,
) -> Result<(), String> {
    use crate::adapters::user_data::{UserDataValues, render};
    let rendered = render(
        template,
        &UserDataValues {
            cluster: &config.cluster.name,
            region,
            // The longest IPv6 text form, an op id and a K3s release with room.
            master_address: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
            token_parameter: &config.ec2.join_token_parameter,
            op_id: "op-0000000000000000000000000000000000000000",
            k3s_version: "v1.333.333-rc333+k3s333",
            k3s_skip_download: "false",
        },
    )
    .map_err(|e| format!("ec2.user_data_template: {e}"))?;
    crate::config::ec2_limits::check_user_data(&rendered).map_err(|e| {
        let file = config_path
            .map(|p| format!("{}: ", p.display()))
            .unwrap_or_default();
        format!(
            "{file}ec2.user_data_template ({}): {e}",
            config.ec2.user_data_template
        )
    })
}

impl Backends {
    /// For a one-shot command: connect, and say why not the way every
    /// command does (a setting that cannot work is bad usage, exit 2;
    /// missing credentials or, with `table`, a table not created yet, exit 1).
    pub async fn for_command(
        config: &Config,
        config_path: Option<&Path>,
        table: bool,
    ) -> Result<Backends, Exit> {
        let backends = Backends::connect(config, config_path)
            .await
            .map_err(|e| Exit::Usage.with_error(e))?;
        if let Err(e) = &backends.credentials {
            return Err(Exit::Failed.with_error(e));
        }
        if table && let Err(e) = backends.state.check_table().await {
            return Err(Exit::Failed.with_error(e));
        }
        Ok(backends)
    }

    pub async fn connect(config: &Config, config_path: Option<&Path>) -> Result<Backends, String> {
        let sdk = sdk_config(&config.aws).await;
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "(no region)".into());
        let template = user_data_template(&config.ec2, config_path)?;
        check_user_data_size(&template, config, config_path, &region)?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
        let credentials = check_credentials(&sdk).await;
        Ok(Backends {
            credentials,
            aws: config.aws.clone(),
            state: Arc::new(DynamoStateStore::new(
                &sdk,
                &config.dynamodb.table,
                &config.cluster.name,
            )),
            cloud: Arc::new(Ec2Fleet::new(
                &sdk,
                &config.cluster.name,
                &config.ec2,
                template,
            )),
            cluster: KubeCluster::connect(&config.kubernetes).await.map(Arc::new),
            metrics: PrometheusMetrics::new(&config.prometheus, clock.clone()).map(Arc::new),
            clock,
            region,
        })
    }

    /// Where calls to `service` (`dynamodb`, `ec2`) go, as the SDK picks
    /// it: the config's endpoint, the per-service and global environment
    /// variables, or AWS's regional endpoint.
    pub fn endpoint(&self, service: &str) -> String {
        self.aws
            .endpoint_url
            .clone()
            .or_else(|| {
                std::env::var(format!("AWS_ENDPOINT_URL_{}", service.to_ascii_uppercase())).ok()
            })
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| format!("{service}.{}.amazonaws.com", self.region))
    }

    /// All four ports, for the engine; an adapter that could not be built
    /// is a configuration problem the engine cannot run without.
    pub fn ports(&self) -> Result<Ports, String> {
        let cluster = self
            .cluster
            .clone()
            .map_err(|e| format!("Kubernetes: {e}"))?;
        let metrics = self
            .metrics
            .clone()
            .map_err(|e| format!("Prometheus: {e}"))?;
        Ok(Ports {
            metrics,
            cluster,
            cloud: self.cloud.clone(),
            state: self.state.clone(),
            clock: self.clock.clone(),
        })
    }
}

/// `user@host`, for audit lines.
pub fn operator_identity() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{}", hostname())
}

pub fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}
