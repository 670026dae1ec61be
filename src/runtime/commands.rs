//! One-shot commands against the real backends: `init`, `unlock --force`,
//! `pause` and `resume` (`check` and `status` have files of their own).

use super::backends::{Backends, operator_identity};
use crate::adapters::SystemClock;
use crate::config::Config;
use crate::exit::Exit;
use crate::ports::{BreakGlass, Clock, StateStore, format_duration};
use std::path::Path;

pub async fn init(config: &Config, path: Option<&Path>) -> Exit {
    let aws = match Backends::for_command(config, path, false).await {
        Ok(a) => a,
        Err(exit) => return exit,
    };
    match aws.state.create_table().await {
        Ok(crate::adapters::dynamodb::InitOutcome::Created) => {
            println!(
                "created table {} in {} (on-demand billing)",
                aws.state.table(),
                aws.region
            );
            Exit::Ok
        }
        Ok(crate::adapters::dynamodb::InitOutcome::Exists) => {
            println!(
                "table {} exists in {}; nothing to do",
                aws.state.table(),
                aws.region
            );
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: creating table {}: {e}", aws.state.table());
            Exit::Failed
        }
    }
}

pub async fn unlock(
    config: &Config,
    path: Option<&Path>,
    force: bool,
    reason: Option<String>,
) -> Exit {
    if !force {
        eprintln!(
            "error: unlock is break-glass: it frees the lock whoever holds it. \
             Re-run with --force (and --reason \"…\") if you are sure no engine is acting."
        );
        return Exit::Usage;
    }
    let aws = match Backends::for_command(config, path, true).await {
        Ok(a) => a,
        Err(exit) => return exit,
    };
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
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: unlock failed: {e}");
            Exit::Failed
        }
    }
}

/// `pause --for D --reason R` (Some) and `resume` (None).
pub async fn pause(
    config: &Config,
    path: Option<&Path>,
    pause: Option<(std::time::Duration, String)>,
) -> Exit {
    if pause.as_ref().is_some_and(|(d, _)| d.is_zero()) {
        eprintln!("error: --for must be longer than zero");
        return Exit::Usage;
    }
    let aws = match Backends::for_command(config, path, true).await {
        Ok(a) => a,
        Err(exit) => return exit,
    };
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
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failed
        }
    }
}
