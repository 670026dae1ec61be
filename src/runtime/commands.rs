//! One-shot commands against the real backends: `init`, `unlock --force`,
//! `pause` and `resume` (`check` and `status` have files of their own).

use super::backends::{Backends, operator_identity};
use crate::config::Config;
use crate::ports::{BreakGlass, Clock, StateStore, SystemClock, format_duration};
use std::path::Path;

pub const OK: u8 = 0;
pub const FAILED: u8 = 1;
pub const USAGE: u8 = 2;

pub async fn init(config: &Config, path: Option<&Path>) -> u8 {
    let aws = match Backends::connect(config, path).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return USAGE;
        }
    };
    if let Err(e) = &aws.credentials {
        eprintln!("error: {e}");
        return FAILED;
    }
    match aws.state.create_table().await {
        Ok(crate::adapters::dynamodb::InitOutcome::Created) => {
            println!(
                "created table {} in {} (on-demand billing)",
                aws.state.table(),
                aws.region
            );
            OK
        }
        Ok(crate::adapters::dynamodb::InitOutcome::Exists) => {
            println!(
                "table {} exists in {}; nothing to do",
                aws.state.table(),
                aws.region
            );
            OK
        }
        Err(e) => {
            eprintln!("error: creating table {}: {e}", aws.state.table());
            FAILED
        }
    }
}

pub async fn unlock(
    config: &Config,
    path: Option<&Path>,
    force: bool,
    reason: Option<String>,
) -> u8 {
    if !force {
        eprintln!(
            "error: unlock is break-glass: it frees the lock whoever holds it. \
             Re-run with --force (and --reason \"…\") if you are sure no engine is acting."
        );
        return USAGE;
    }
    let aws = match Backends::connect(config, path).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return USAGE;
        }
    };
    if let Err(e) = &aws.credentials {
        eprintln!("error: {e}");
        return FAILED;
    }
    if let Err(e) = aws.state.check_table().await {
        eprintln!("error: {e}");
        return FAILED;
    }
    let before = aws.state.read().await.ok().and_then(|s| s.lock);
    let audit = BreakGlass {
        who: operator_identity(),
        reason: reason.unwrap_or_else(|| "no reason given".into()),
        now: SystemClock::new().now(),
    };
    match aws.state.force_unlock(&audit).await {
        Ok(lock) => {
            let previous = before.map_or("nobody (never taken)".into(), |l| {
                format!(
                    "{} (fence {}, {})",
                    l.owner,
                    l.fence,
                    if l.in_progress { "in progress" } else { "free" }
                )
            });
            tracing::warn!(
                target: "audit",
                who = %audit.who,
                reason = %audit.reason,
                previous_holder = %previous,
                fence = lock.fence,
                "break-glass unlock"
            );
            println!(
                "lock freed by {} ({}); previous holder: {previous}; fence is now {} so a stale holder's writes are refused",
                audit.who, audit.reason, lock.fence
            );
            OK
        }
        Err(e) => {
            eprintln!("error: unlock failed: {e}");
            FAILED
        }
    }
}

/// `pause --for D --reason R` (Some) and `resume` (None).
pub async fn pause(
    config: &Config,
    path: Option<&Path>,
    pause: Option<(std::time::Duration, String)>,
) -> u8 {
    if pause.as_ref().is_some_and(|(d, _)| d.is_zero()) {
        eprintln!("error: --for must be longer than zero");
        return USAGE;
    }
    let aws = match Backends::connect(config, path).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return USAGE;
        }
    };
    if let Err(e) = &aws.credentials {
        eprintln!("error: {e}");
        return FAILED;
    }
    if let Err(e) = aws.state.check_table().await {
        eprintln!("error: {e}");
        return FAILED;
    }
    let who = operator_identity();
    let rules = super::settings::engine_settings(config).lease;
    let clock: std::sync::Arc<dyn Clock> = std::sync::Arc::new(SystemClock::new());
    match super::pause::set_pause(aws.state.clone(), clock, &rules, &who, pause.clone()).await {
        Ok(previous) => {
            match &pause {
                Some((d, reason)) => {
                    tracing::warn!(target: "audit", who = %who, reason = %reason, "cluster paused for {}", format_duration(*d));
                    println!(
                        "cluster \"{}\" paused for {} by {who}: {reason}",
                        config.cluster.name,
                        format_duration(*d)
                    );
                }
                None => {
                    tracing::warn!(target: "audit", who = %who, "cluster resumed");
                    match previous {
                        Some(p) => println!(
                            "cluster \"{}\" resumed by {who} (it was paused by {}: {})",
                            config.cluster.name, p.by, p.reason
                        ),
                        None => println!(
                            "cluster \"{}\" was not paused; nothing to resume",
                            config.cluster.name
                        ),
                    }
                }
            }
            OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            FAILED
        }
    }
}
