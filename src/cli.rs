//! Command line (DESIGN §5) and the dispatch from it to the runtime.

use crate::app::App;
use crate::app::keymap::Keymap;
use crate::config::{Config, ConfigError};
use crate::ports::Clock;
use crate::runtime::console;
use crate::runtime::demo::{Demo, DemoOptions, Speed};
use crate::runtime::headless::{self, StopAfter};
use crate::runtime::logging::{self, LogFormat};
use crate::runtime::settings::engine_settings;
use crate::runtime::{Mode, Shutdown};
use crate::sim::ScenarioKind;
use crate::sim::ports::lock;
use crate::ui::ViewOptions;
use clap::Parser;
use std::io::Write;
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
    /// Log lines as human text or one JSON object per line.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
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
        return ExitCode::from(EXIT_FAILURE);
    };
    match (cli.demo, keymap) {
        (true, None) => runtime.block_on(run_headless_demo(cli, config)),
        (true, Some(keymap)) => runtime.block_on(run_console_demo(cli, config, keymap)),
        (false, keymap) => runtime.block_on(run_real(cli, config, keymap)),
    }
}

fn run_command(cli: &Cli, command: &Command, config: &Config) -> ExitCode {
    use crate::runtime::commands;
    let Some(runtime) = new_runtime() else {
        return ExitCode::from(EXIT_FAILURE);
    };
    logging::init_stderr();
    let path = cli.config.as_deref();
    let code = runtime.block_on(async {
        match command {
            Command::Init => commands::init(config, path).await,
            Command::Check => crate::runtime::check::check(config, path).await,
            Command::Status { json } => commands::status(config, path, *json).await,
            Command::Unlock { force, reason } => {
                commands::unlock(config, path, *force, reason.clone()).await
            }
        }
    });
    ExitCode::from(code)
}

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

fn demo_options(cli: &Cli, start: Option<crate::ports::Timestamp>) -> DemoOptions {
    DemoOptions {
        scenario: cli.scenario,
        seed: cli.seed,
        speed: cli.speed.clone(),
        workers: cli.workers,
        start,
    }
}

async fn run_console_demo(cli: Cli, config: Config, keymap: Keymap) -> ExitCode {
    logging::init_console();
    let mode = if cli.read_only {
        Mode::ReadOnly
    } else {
        Mode::Supervised
    };
    // The console's simulated day starts at the real time of day, so at
    // speed 1 the simulated clock and the log pane's clock agree.
    let start = crate::ports::SystemClock::new().now();
    let demo = Demo::new(
        &config,
        &demo_options(&cli, Some(start)),
        mode == Mode::ReadOnly,
    );
    let engine = crate::runtime::demo::engine_on(&demo, &config, mode, cli.seed);
    let mut app = App::new(
        config.cluster.name.clone(),
        true,
        mode == Mode::ReadOnly,
        keymap,
        engine_settings(&config),
        demo.ports.clock.now(),
    );
    app.light_theme = config.ui.theme == "light";
    let shutdown = Shutdown::new();
    shutdown.listen_for_signals();
    tracing::info!(
        target: "runtime",
        "simulated cluster \"{}\" ({} scenario, seed {}) at speed {}",
        config.cluster.name,
        cli.scenario,
        cli.seed,
        match &cli.speed { Speed::Times(x) => format!("{x}×"), Speed::Max => "max".into() }
    );
    let options = ViewOptions {
        log_timestamps: cli.speed == Speed::Times(1.0),
    };
    let interval = config.engine.interval.get();
    match console::run(app, engine, demo.ports.clone(), interval, options, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// The real backends: the console (supervised or read-only) or `--auto`.
async fn run_real(cli: Cli, config: Config, keymap: Option<Keymap>) -> ExitCode {
    use crate::runtime::backends::{Backends, hostname};
    use crate::runtime::executor::Executor;
    use crate::runtime::ids::IdSource;
    use crate::runtime::lease::LockClient;
    use std::sync::Arc;
    let mode = match (cli.read_only, &keymap) {
        (true, _) => Mode::ReadOnly,
        (false, None) => Mode::Auto,
        (false, Some(_)) => Mode::Supervised,
    };
    let backends = match Backends::connect(&config, cli.config.as_deref()).await {
        Ok(b) => b,
        Err(e) => return usage_error(e),
    };
    let ports = match backends.ports() {
        Ok(p) => p,
        Err(e) => return usage_error(e),
    };
    // A missing table is a setup step not done, not a transient failure.
    if let Err(e) = backends.state.check_table().await {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_FAILURE);
    }
    let settings = engine_settings(&config);
    let executor = (mode != Mode::ReadOnly).then(|| {
        let ids = Arc::new(IdSource::random());
        let role = if mode == Mode::Auto {
            "auto"
        } else {
            "console"
        };
        let owner =
            crate::engine::lock::owner_id(&hostname(), std::process::id(), role, &ids.uuid());
        let lock = LockClient::new(
            ports.state.clone(),
            ports.clock.clone(),
            settings.lease.clone(),
            owner,
            ids.clone(),
        );
        Executor::new(ports.clone(), settings.clone(), lock, ids)
    });
    let mut engine = crate::runtime::Engine::new(ports.clone(), settings.clone(), executor, mode);
    let shutdown = Shutdown::new();
    let interval = config.engine.interval.get();
    match keymap {
        Some(keymap) => {
            logging::init_console();
            shutdown.listen_for_signals();
            let mut app = App::new(
                config.cluster.name.clone(),
                false,
                mode == Mode::ReadOnly,
                keymap,
                settings,
                ports.clock.now(),
            );
            app.light_theme = config.ui.theme == "light";
            let options = ViewOptions {
                log_timestamps: true,
            };
            match console::run(app, engine, ports, interval, options, shutdown).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
        None => {
            logging::init_stdout(cli.log_format, ports.clock.clone());
            shutdown.listen_for_signals();
            tracing::info!(
                target: "runtime",
                cluster = %config.cluster.name,
                mode = mode.badge(),
                owner = engine.owner().unwrap_or("-"),
                "engine started on the real backends"
            );
            let stop = StopAfter {
                ticks: if cli.once { Some(1) } else { cli.ticks },
                duration: cli.days.map(|d| Duration::from_secs_f64(d * 86_400.0)),
                full_last_interval: false,
            };
            let outcome = headless::run(
                &mut engine,
                ports.clock.clone(),
                interval,
                stop,
                None,
                &shutdown,
            )
            .await;
            tracing::info!(target: "runtime", ticks = outcome.ticks, "engine stopped");
            ExitCode::SUCCESS
        }
    }
}

async fn run_headless_demo(cli: Cli, config: Config) -> ExitCode {
    let mode = if cli.read_only {
        Mode::ReadOnly
    } else {
        Mode::Auto
    };
    let demo = Demo::new(&config, &demo_options(&cli, None), mode == Mode::ReadOnly);
    logging::init_stdout(cli.log_format, demo.ports.clock.clone());
    let mut engine = crate::runtime::demo::engine_on(&demo, &config, mode, cli.seed);
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
