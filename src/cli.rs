//! Command line (DESIGN §5) and the dispatch from it to the runtime.

use crate::config::{Config, ConfigError};
use crate::engine::lock::owner_id;
use crate::runtime::demo::{Demo, DemoOptions, Speed};
use crate::runtime::executor::Executor;
use crate::runtime::headless::{self, StopAfter};
use crate::runtime::ids::IdSource;
use crate::runtime::lease::LockClient;
use crate::runtime::logging::{self, LogFormat};
use crate::runtime::settings::engine_settings;
use crate::runtime::{Engine, Mode, Shutdown};
use crate::sim::ScenarioKind;
use crate::sim::ports::lock;
use clap::Parser;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "k3s-autoscaler",
    version,
    about = "Operations console and scaling engine for K3s clusters on EC2",
    long_about = "Operations console and scaling engine for K3s clusters whose workers are plain EC2 instances.\n\n\
        Without --auto it opens the console in supervised mode: the engine suggests, you confirm.\n\
        With --demo every backend is an embedded simulated cluster (no AWS account needed)."
)]
pub struct Cli {
    /// Configuration file (TOML); see config.example.toml.
    #[arg(short = 'c', long = "config", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Run against the embedded simulated cluster instead of AWS/Kubernetes/Prometheus.
    #[arg(long)]
    pub demo: bool,
    /// Workload of the simulated cluster.
    #[arg(long, value_name = "NAME", default_value = "flash-sale", value_parser = parse_scenario)]
    pub scenario: ScenarioKind,
    /// Seed of every random choice in the simulation.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// Simulated time per real second: a factor like 10, or `max`.
    #[arg(long, value_name = "X", default_value = "1", value_parser = parse_speed)]
    pub speed: Speed,
    /// Headless: the engine acts on its own decisions.
    #[arg(long)]
    pub auto: bool,
    /// Observe and decide only: never take the lock, never change anything.
    #[arg(long)]
    pub read_only: bool,
    /// One tick, then exit.
    #[arg(long)]
    pub once: bool,
    /// Stop after N ticks.
    #[arg(long, value_name = "N")]
    pub ticks: Option<u64>,
    /// Stop after D days (simulated time with --demo).
    #[arg(long, value_name = "D")]
    pub days: Option<f64>,
    /// Workers in the simulated cluster at start (demand scales with it).
    #[arg(long, value_name = "N")]
    pub workers: Option<u32>,
    /// Log lines as human text or one JSON object per line.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

fn parse_scenario(s: &str) -> Result<ScenarioKind, String> {
    s.parse()
}

fn parse_speed(s: &str) -> Result<Speed, String> {
    if s == "max" {
        return Ok(Speed::Max);
    }
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(Speed::Times(x)),
        _ => Err(format!(
            "\"{s}\" is not a speed: use a positive factor like 10, or max"
        )),
    }
}

/// Exit codes: 0 done, 1 failed at run time, 2 bad usage or configuration.
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

fn load_config(cli: &Cli) -> Result<Config, ConfigError> {
    match &cli.config {
        Some(path) => Config::load(path),
        None => Ok(Config::default()),
    }
}

pub fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_USAGE)
}

pub fn run(cli: Cli) -> ExitCode {
    let config = match load_config(&cli) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    if let Some(days) = cli.days
        && !(days.is_finite() && days > 0.0)
    {
        return usage_error(format!("--days must be a positive number, got {days}"));
    }
    if cli.workers == Some(0) {
        return usage_error("--workers must be at least 1");
    }
    if !cli.demo {
        return usage_error(
            "real backends are not wired into this build yet: run with --demo (the embedded simulated cluster)",
        );
    }
    if !cli.auto && !cli.once {
        return usage_error(
            "the console is not built yet: run headless with --auto (or --auto --read-only)",
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    runtime.block_on(run_headless_demo(cli, config))
}

async fn run_headless_demo(cli: Cli, config: Config) -> ExitCode {
    let mode = if cli.read_only {
        Mode::ReadOnly
    } else {
        Mode::Auto
    };
    let options = DemoOptions {
        scenario: cli.scenario,
        seed: cli.seed,
        speed: cli.speed.clone(),
        workers: cli.workers,
    };
    let demo = Demo::new(&config, &options, mode == Mode::ReadOnly);
    logging::init_stdout(cli.log_format, demo.ports.clock.clone());
    let settings = engine_settings(&config);
    let ids = Arc::new(IdSource::seeded(cli.seed));
    let owner = owner_id("demo", std::process::id(), "auto", &ids.uuid());
    let executor = Executor::new(
        demo.ports.clone(),
        settings.clone(),
        LockClient::new(
            demo.ports.state.clone(),
            demo.ports.clock.clone(),
            settings.lease.clone(),
            owner,
            ids.clone(),
        ),
        ids,
    );
    let mut engine = Engine::new(demo.ports.clone(), settings, Some(executor), mode);
    let shutdown = Shutdown::new();
    shutdown.listen_for_signals();
    tracing::info!(
        target: "runtime",
        scenario = %cli.scenario,
        seed = cli.seed,
        mode = mode.badge(),
        "simulated cluster \"{}\" started",
        config.cluster.name
    );
    let stop = StopAfter {
        ticks: if cli.once { Some(1) } else { cli.ticks },
        duration: cli.days.map(|d| Duration::from_secs_f64(d * 86_400.0)),
        full_last_interval: !cli.once,
    };
    headless::run(
        &mut engine,
        demo.ports.clock.clone(),
        config.engine.interval.get(),
        stop,
        Some(demo.world.clone()),
        &shutdown,
    )
    .await;
    let summary = lock(&demo.world).summary();
    let line = match cli.log_format {
        LogFormat::Json => serde_json::json!({ "summary": summary }).to_string(),
        LogFormat::Text => format!(
            "summary: {:.2} simulated hours, {:.2} worker-hours, peak {} workers, {:.2} pending pod-minutes, \
             p95 unschedulable {:.0}s, {} scale-ups, {} scale-downs, {} failed, {} aborted, {} invariant violations",
            summary.simulated_hours,
            summary.worker_hours,
            summary.peak_workers,
            summary.pending_pod_minutes,
            summary.p95_unschedulable_seconds,
            summary.scale_ups,
            summary.scale_downs,
            summary.failed_operations,
            summary.aborted_operations,
            summary.invariant_violations
        ),
    };
    // A closed stdout (`| head`) is not worth a panic.
    let _ = writeln!(std::io::stdout(), "{line}");
    if summary.invariant_violations > 0 {
        ExitCode::from(EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    }
}
