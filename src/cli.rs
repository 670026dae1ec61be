//! Command line (README, "Running headless") and the dispatch from it to the runtime.

use crate::app::keymap::Keymap;
use crate::config::{Config, ConfigError};
use crate::exit::Exit;
use crate::harness::demo::Speed;
use crate::runtime::Shutdown;
use crate::runtime::logging::{self, LogFormat};
use crate::sim::ScenarioKind;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
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
    /// Also run the same seeded workload under baselines and compare:
    /// `static-5`, `seed-cadence`, `oracle` (with --demo --auto).
    #[arg(long, value_name = "LIST", value_parser = crate::harness::compare::parse_baselines)]
    pub compare: Option<crate::harness::compare::Baselines>,
    /// Log lines as human text or one JSON object per line.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// With --demo: start with one of each reconciliation finding (a
    /// never-joined and an orphan instance, a ghost node, a stray cordon,
    /// an operation whose instances are gone); see `R` and `status`.
    #[arg(long, requires = "demo", conflicts_with = "compare")]
    pub drift: bool,
    /// Serve the engine's own Prometheus metrics (/metrics) and its health
    /// (/healthz) on this address, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Create the DynamoDB state table (on-demand billing); safe to run twice.
    Init,
    /// Reach every backend once, print a table, exit non-zero if any failed.
    Check,
    /// One-shot: workers, the lock (owner, fence, lease left) and the operation in flight.
    Status {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Pause every engine of the cluster (console or headless, any host):
    /// nothing starts, an operation in flight waits.
    Pause {
        /// How long, e.g. 30m, 2h.
        #[arg(long = "for", value_name = "DURATION", value_parser = crate::config::parse_duration)]
        duration: Duration,
        /// Why: shown to everyone, and in `status`.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// End a cluster-wide pause.
    Resume,
    /// Print a shell completion script: `completions bash > /etc/bash_completion.d/k3s-autoscaler`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Break-glass: free the lock whoever holds it and bump the fence. Audited.
    Unlock {
        /// Required: this overrides the lock protocol.
        #[arg(long)]
        force: bool,
        /// Why, for the audit trail.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
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

fn load_config(cli: &Cli) -> Result<Config, ConfigError> {
    match &cli.config {
        Some(path) => Config::load(path),
        None => Ok(Config::default()),
    }
}

pub fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    Exit::Usage.with_error(message).into()
}

pub fn run(cli: Cli) -> ExitCode {
    // Completions need no configuration: they describe the command line.
    if let Some(Command::Completions { shell }) = &cli.command {
        use clap::CommandFactory;
        let mut command = Cli::command();
        clap_complete::generate(
            *shell,
            &mut command,
            "k3s-autoscaler",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
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
    if let Some(command) = &cli.command {
        return run_command(&cli, command, &config);
    }
    let headless = cli.auto || cli.once;
    let keymap = if headless {
        None
    } else {
        if cli.speed == Speed::Max {
            return usage_error(
                "--speed max is for headless runs (--auto); give the console a factor such as --speed 10",
            );
        }
        match Keymap::new(cli.read_only, &config.ui.keys) {
            Ok(k) => Some(k),
            Err(message) => return usage_error(keymap_error(&cli, message)),
        }
    };
    let Some(runtime) = new_runtime() else {
        return ExitCode::from(Exit::Failed);
    };
    match (cli.demo, keymap) {
        (true, None) => runtime.block_on(demo::run_headless_demo(cli, config)),
        (true, Some(keymap)) => runtime.block_on(demo::run_console_demo(cli, config, keymap)),
        (false, keymap) => runtime.block_on(real::run_real(cli, config, keymap)),
    }
}

fn run_command(cli: &Cli, command: &Command, config: &Config) -> ExitCode {
    use crate::runtime::commands;
    if cli.demo && !matches!(command, Command::Status { .. }) {
        return usage_error(
            "--demo runs the console, --auto and `status` on the simulated cluster; the other commands need real backends",
        );
    }
    let Some(runtime) = new_runtime() else {
        return ExitCode::from(Exit::Failed);
    };
    logging::init_stderr();
    let path = cli.config.as_deref();
    let code = runtime.block_on(async {
        match command {
            Command::Status { json } if cli.demo => demo::status(cli, config, *json).await,
            Command::Init => commands::init(config, path).await,
            Command::Check => crate::runtime::check::check(config, path).await,
            Command::Pause { duration, reason } => {
                commands::pause(config, path, Some((*duration, reason.clone()))).await
            }
            Command::Resume => commands::pause(config, path, None).await,
            Command::Status { json } => crate::runtime::status::status(config, path, *json).await,
            Command::Completions { .. } => Exit::Ok,
            Command::Unlock { force, reason } => {
                commands::unlock(config, path, *force, reason.clone()).await
            }
        }
    });
    ExitCode::from(code)
}

/// `--metrics-addr`: bound before the first tick, so a taken port stops
/// the start instead of leaving a service without its metrics.
async fn serve_metrics(
    cli: &Cli,
    engine: &crate::runtime::Engine,
    interval: Duration,
    shutdown: &Shutdown,
) -> Result<(), ExitCode> {
    use crate::runtime::metrics::server;
    let Some(addr) = cli.metrics_addr else {
        return Ok(());
    };
    let listener = server::bind(addr).await.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(Exit::Failed)
    })?;
    // A tick may run late by a slow backend's timeout; three missed ticks
    // (and never less than 30 s) is a stuck engine.
    let max_age = (interval * 3).max(Duration::from_secs(30));
    server::serve(listener, engine.metrics(), max_age, shutdown.clone());
    Ok(())
}

mod demo;
mod real;

fn new_runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            None
        }
    }
}

/// A bad `[ui.keys]` entry is a config error: name the file and the key.
fn keymap_error(cli: &Cli, message: String) -> ConfigError {
    let key = message.split(':').next().map(str::to_string);
    ConfigError {
        file: cli
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from("(defaults)")),
        line: None,
        key,
        message,
    }
}
