//! `--demo`: the console, a headless run or a comparison on the embedded
//! simulated cluster.

use super::{Cli, serve_metrics};
use crate::app::App;
use crate::app::keymap::Keymap;
use crate::config::Config;
use crate::exit::Exit;
use crate::harness::demo::{Demo, DemoOptions, Speed, WorldWatch};
use crate::ports::Clock;
use crate::runtime::console;
use crate::runtime::headless::{self, StopAfter};
use crate::runtime::logging::{self, LogFormat};
use crate::runtime::settings::engine_settings;
use crate::runtime::{Mode, Shutdown};
use crate::sim::ports::lock;
use crate::ui::ViewOptions;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

fn demo_options(cli: &Cli, start: Option<crate::ports::Timestamp>) -> DemoOptions {
    DemoOptions {
        scenario: cli.scenario,
        seed: cli.seed,
        speed: cli.speed.clone(),
        workers: cli.workers,
        start,
    }
}

/// The simulated cluster, with `--drift` injected if asked for.
fn new_demo(cli: &Cli, config: &Config, options: &DemoOptions, read_only: bool) -> Demo {
    let demo = Demo::new(config, options, read_only);
    if cli.drift {
        let drift = lock(&demo.world).inject_drift();
        tracing::info!(target: "sim", "drift injected: {drift:?}");
    }
    demo
}

/// `--demo status`: one look at a freshly started simulated cluster
/// (with `--drift`, one of each reconciliation finding).
pub async fn status(cli: &Cli, config: &Config, as_json: bool) -> Exit {
    use crate::runtime::status::{Sources, report};
    let demo = new_demo(cli, config, &demo_options(cli, None), true);
    report(config, &Sources::of(&demo.ports, "simulated"), as_json).await
}

pub async fn run_console_demo(cli: Cli, config: Config, keymap: Keymap) -> ExitCode {
    logging::init_console();
    let mode = if cli.read_only {
        Mode::ReadOnly
    } else {
        Mode::Supervised
    };
    // The console's simulated day starts at the real time of day, so at
    // speed 1 the simulated clock and the log pane's clock agree.
    let start = crate::adapters::SystemClock::new().now();
    let demo = new_demo(
        &cli,
        &config,
        &demo_options(&cli, Some(start)),
        mode == Mode::ReadOnly,
    );
    let mut engine = crate::harness::demo::engine_on(&demo, &config, mode, cli.seed);
    if let Err(code) = attach_notifier(&mut engine, &config) {
        return code;
    }
    super::real::attach_events(&mut engine, &demo.ports, config.kubernetes.events);
    let shutdown = Shutdown::new();
    if let Err(code) = serve_metrics(&cli, &engine, config.engine.interval.get(), &shutdown).await {
        return code;
    }
    let mut app = App::new(
        config.cluster.name.clone(),
        true,
        mode == Mode::ReadOnly,
        keymap,
        engine_settings(&config),
        demo.ports.clock.now(),
    );
    app.light_theme = config.ui.theme == "light";
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
            ExitCode::from(Exit::Failed)
        }
    }
}

/// `--compare`: the engine and each baseline on the same seeded workload.
async fn run_comparison(
    cli: &Cli,
    config: &Config,
    baselines: &[crate::harness::compare::Baseline],
) -> ExitCode {
    use crate::harness::compare::{self, Figures};
    let options = demo_options(cli, None);
    let duration = match (cli.days, cli.ticks) {
        (Some(d), _) => Duration::from_secs_f64(d * 86_400.0),
        (None, Some(t)) => config.engine.interval.get() * t as u32,
        (None, None) => Duration::from_secs(86_400),
    };
    eprintln!(
        "comparing on {} (seed {}) for {:.1} simulated days…",
        cli.scenario,
        cli.seed,
        duration.as_secs_f64() / 86_400.0
    );
    let mut rows: Vec<(&str, Figures)> = vec![(
        "engine",
        Figures::from(&compare::engine(config, &options, duration).await),
    )];
    for b in baselines {
        rows.push((
            b.name(),
            Figures::from(&compare::baseline(*b, config, &options, duration).await),
        ));
    }
    let rows = compare::against_oracle(rows);
    let line = match cli.log_format {
        LogFormat::Json => {
            // The table for people on stderr; stdout stays one JSON object per line.
            eprint!("{}", compare::table(&rows));
            let map: serde_json::Map<String, serde_json::Value> = rows
                .iter()
                .map(|(name, f)| {
                    (
                        name.to_string(),
                        serde_json::to_value(f).unwrap_or_default(),
                    )
                })
                .collect();
            serde_json::json!({ "comparison": map }).to_string()
        }
        LogFormat::Text => compare::table(&rows),
    };
    let _ = writeln!(std::io::stdout(), "{}", line.trim_end());
    if rows.iter().any(|(_, f)| f.invariant_violations > 0) {
        ExitCode::from(Exit::Failed)
    } else {
        ExitCode::SUCCESS
    }
}

pub async fn run_headless_demo(cli: Cli, config: Config) -> ExitCode {
    if let Some(baselines) = &cli.compare {
        return run_comparison(&cli, &config, &baselines.0).await;
    }
    let mode = if cli.read_only {
        Mode::ReadOnly
    } else {
        Mode::Auto
    };
    let demo = new_demo(
        &cli,
        &config,
        &demo_options(&cli, None),
        mode == Mode::ReadOnly,
    );
    logging::init_stdout(cli.log_format, demo.ports.clock.clone());
    let mut engine = crate::harness::demo::engine_on(&demo, &config, mode, cli.seed);
    if let Err(code) = attach_notifier(&mut engine, &config) {
        return code;
    }
    super::real::attach_events(&mut engine, &demo.ports, config.kubernetes.events);
    let shutdown = Shutdown::new();
    shutdown.listen_for_signals();
    if let Err(code) = serve_metrics(&cli, &engine, config.engine.interval.get(), &shutdown).await {
        return code;
    }
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
        Some(&mut WorldWatch::new(demo.world.clone())),
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
        ExitCode::from(Exit::Failed)
    } else {
        ExitCode::SUCCESS
    }
}

/// `[notify]` on the simulated cluster too, so a webhook can be tried
/// without an AWS account (read-only engines send nothing).
fn attach_notifier(engine: &mut crate::runtime::Engine, config: &Config) -> Result<(), ExitCode> {
    if engine.mode == Mode::ReadOnly {
        return Ok(());
    }
    // Marked, so that `--demo -c prod.toml` never reads as production.
    let cluster = format!("{} (simulated)", config.cluster.name);
    match crate::runtime::notify::from_config(&config.notify, &cluster) {
        Ok(Some(notifier)) => {
            engine.set_notifier(notifier);
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => Err(super::usage_error(e)),
    }
}
