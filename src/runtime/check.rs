//! `k3s-autoscaler check`: one read through each real adapter with the
//! configured identity, printed as a table (backend, endpoint, ok/failed,
//! latency, hint); non-zero exit if any failed.

use super::backends::Backends;
use crate::adapters::SystemClock;
use crate::config::Config;
use crate::exit::Exit;
use crate::ports::{Clock, CloudApi, ClusterApi, MetricsSource, Reading, Signal, StateStore};
use std::path::Path;
use std::time::Instant;

struct Row {
    name: &'static str,
    endpoint: String,
    result: Result<String, String>,
    ms: u128,
    hint: &'static str,
}

impl Row {
    fn new(
        name: &'static str,
        endpoint: String,
        result: Result<String, String>,
        started: Instant,
        hint: &'static str,
    ) -> Row {
        Row {
            name,
            endpoint,
            result,
            ms: started.elapsed().as_millis(),
            hint,
        }
    }
}

async fn prometheus(backends: &Backends, config: &Config) -> Row {
    let t = Instant::now();
    let result = match &backends.metrics {
        Ok(m) => match m.instant(Signal::WorkerCpu).await {
            Reading::Known { value, .. } => Ok(format!("worker CPU {value:.1}%")),
            Reading::Unknown { reason } => Err(reason),
        },
        Err(e) => Err(e.clone()),
    };
    Row::new(
        "prometheus",
        config.prometheus.url.clone(),
        result,
        t,
        "check prometheus.url, the credentials variable, and that prometheus.cpu_query returns one series",
    )
}

async fn kubernetes(backends: &Backends, config: &Config) -> Row {
    let t = Instant::now();
    let (endpoint, result) = match &backends.cluster {
        Ok(k) => (
            k.endpoint().to_string(),
            match k.nodes().await {
                Ok(nodes) if nodes.is_empty() => Err(format!(
                    "no node matches kubernetes.worker_selector \"{}\"",
                    config.kubernetes.worker_selector
                )),
                Ok(nodes) => Ok(format!(
                    "{} workers, {} Ready",
                    nodes.len(),
                    nodes.iter().filter(|n| n.ready).count()
                )),
                Err(e) => Err(e.to_string()),
            },
        ),
        Err(e) => ("-".into(), Err(e.clone())),
    };
    Row::new(
        "kubernetes",
        endpoint,
        result,
        t,
        "check kubernetes.kubeconfig / context (or KUBECONFIG) and worker_selector",
    )
}

async fn ec2(backends: &Backends, config: &Config, endpoint: String) -> Row {
    let t = Instant::now();
    let listed = match &backends.credentials {
        Ok(()) => backends
            .cloud
            .managed_instances()
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.clone()),
    };
    let result = match listed {
        Ok(instances) => match backends.cloud.master().await {
            Ok(Some(m)) => Ok(format!(
                "{} managed workers; master {}",
                instances.len(),
                m.id
            )),
            Ok(None) => Err(format!(
                "{} managed workers, but no running instance has the master tag {}",
                instances.len(),
                config.ec2.master_tag
            )),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e),
    };
    Row::new(
        "ec2",
        endpoint,
        result,
        t,
        "check credentials (AWS_PROFILE, instance role), [aws] region, ec2:DescribeInstances",
    )
}

async fn dynamodb(backends: &Backends, config: &Config, endpoint: String) -> Row {
    let t = Instant::now();
    let table = &config.dynamodb.table;
    let checked = match &backends.credentials {
        Ok(()) => backends
            .state
            .check_table()
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.clone()),
    };
    let result = match checked {
        Ok(()) => match backends.state.read().await {
            Ok(s) => Ok(match s.lock {
                Some(l) if l.is_held_at(SystemClock::new().now()) => {
                    format!(
                        "table {table}; lock held by {} (fence {})",
                        l.owner, l.fence
                    )
                }
                Some(l) => format!("table {table}; lock free (fence {})", l.fence),
                None => format!("table {table}; lock never taken"),
            }),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e),
    };
    Row::new(
        "dynamodb",
        endpoint,
        result,
        t,
        "run `k3s-autoscaler init`; check dynamodb:GetItem/DescribeTable on the table",
    )
}

/// The engine's own sanity stop on what the backends say now: a selector
/// that matches no node beside running workers, most workers without a
/// Ready node. The same words the engine would hold with.
async fn sanity(backends: &Backends, config: &Config) -> Row {
    let t = Instant::now();
    let result = match (&backends.cluster, &backends.credentials) {
        (Ok(k), Ok(())) => match (k.nodes().await, backends.cloud.managed_instances().await) {
            (Ok(nodes), Ok(fleet)) => {
                let view = crate::engine::ClusterView {
                    nodes,
                    ..Default::default()
                };
                let settings = super::settings::engine_settings(config);
                match crate::engine::sanity::implausible(
                    &settings,
                    &view,
                    &fleet,
                    None,
                    SystemClock::new().now(),
                ) {
                    Some(why) => Err(format!("sanity stop: {why}")),
                    None => Ok(format!(
                        "{} managed instances, {} Ready nodes",
                        fleet.len(),
                        view.ready_workers()
                    )),
                }
            }
            (Err(e), _) | (_, Err(e)) => Err(format!("not checked: {e}")),
        },
        (Err(e), _) | (_, Err(e)) => Err(format!("not checked: {e}")),
    };
    Row::new(
        "sanity",
        "-".into(),
        result,
        t,
        "the engine would hold every destructive step: check kubernetes.worker_selector and the kube context against the running workers",
    )
}

pub async fn check(config: &Config, path: Option<&Path>) -> Exit {
    let backends = match Backends::connect(config, path).await {
        Ok(b) => b,
        Err(e) => return Exit::Usage.with_error(e),
    };
    let rows = [
        prometheus(&backends, config).await,
        kubernetes(&backends, config).await,
        ec2(&backends, config, backends.endpoint("ec2")).await,
        dynamodb(&backends, config, backends.endpoint("dynamodb")).await,
        sanity(&backends, config).await,
    ];
    println!(
        "{:<11} {:<42} {:<7} {:>8}  detail",
        "BACKEND", "ENDPOINT", "STATUS", "LATENCY"
    );
    let mut failed = 0;
    for row in &rows {
        match &row.result {
            Ok(detail) => println!(
                "{:<11} {:<42} {:<7} {:>6}ms  {detail}",
                row.name, row.endpoint, "ok", row.ms
            ),
            Err(why) => {
                failed += 1;
                println!(
                    "{:<11} {:<42} {:<7} {:>6}ms  {why}",
                    row.name, row.endpoint, "FAILED", row.ms
                );
                println!(
                    "{:<11} {:<42} {:<7} {:>8}  hint: {}",
                    "", "", "", "", row.hint
                );
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} backends failed", rows.len());
        Exit::Failed
    } else {
        Exit::Ok
    }
}
