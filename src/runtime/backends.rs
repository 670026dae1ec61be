//! The real backends, built from the config: what runs without `--demo`.

use crate::adapters::aws::sdk_config;
use crate::adapters::dynamodb::DynamoStateStore;
use crate::adapters::ec2::Ec2Fleet;
use crate::adapters::user_data::DEFAULT_TEMPLATE;
use crate::config::{Config, Ec2Config};
use std::path::{Path, PathBuf};

pub struct AwsBackends {
    pub state: DynamoStateStore,
    pub cloud: Ec2Fleet,
    pub region: String,
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

pub async fn aws(config: &Config, config_path: Option<&Path>) -> Result<AwsBackends, String> {
    let sdk = sdk_config(&config.aws).await;
    let region = sdk
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "(no region)".into());
    let template = user_data_template(&config.ec2, config_path)?;
    Ok(AwsBackends {
        state: DynamoStateStore::new(&sdk, &config.dynamodb.table, &config.cluster.name),
        cloud: Ec2Fleet::new(&sdk, &config.cluster.name, &config.ec2, template),
        region,
    })
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
