//! `k3s-autoscaler` on the real backends: the console or `--auto`.

use super::{Cli, serve_metrics, usage_error};
use crate::app::App;
use crate::app::keymap::Keymap;
use crate::config::Config;
use crate::exit::Exit;
use crate::runtime::console;
use crate::runtime::headless::{self, StopAfter};
use crate::runtime::logging;
use crate::runtime::settings::engine_settings;
use crate::runtime::{Mode, Shutdown};
use crate::ui::ViewOptions;
use std::process::ExitCode;
use std::time::Duration;

/// At exit, how long queued notices may still take (a systemd stop waits
/// 90 s by default; this leaves it most of them).
const FLUSH_PATIENCE: Duration = Duration::from_secs(10);

/// The real backends: the console (supervised or read-only) or `--auto`.
pub async fn run_real(cli: Cli, config: Config, keymap: Option<Keymap>) -> ExitCode {
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
    if let Err(e) = &backends.credentials {
        eprintln!("error: {e}");
        return ExitCode::from(Exit::Failed);
    }
    // A missing table is a setup step not done, not a transient failure.
    if let Err(e) = backends.state.check_table().await {
        eprintln!("error: {e}");
        return ExitCode::from(Exit::Failed);
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
    let notifier = if mode == Mode::ReadOnly {
        None
    } else {
        match crate::runtime::notify::from_config(&config.notify, &config.cluster.name) {
            Ok(n) => n,
            Err(e) => return usage_error(e),
        }
    };
    if let Some(n) = &notifier {
        engine.set_notifier(n.clone());
    }
    attach_events(&mut engine, &ports, config.kubernetes.events);
    if config.kubernetes.watch
        && let Ok(cluster) = &backends.cluster
    {
        engine.set_wake(cluster.start_watches());
    }
    engine
        .metrics()
        .set_failure_limit(config.engine.unhealthy_after);
    let shutdown = Shutdown::new();
    let interval = config.engine.interval.get();
    if let Err(code) = serve_metrics(&cli, &engine, interval, &shutdown).await {
        return code;
    }
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
            let result = console::run(app, engine, ports, interval, options, shutdown).await;
            if let Some(n) = &notifier {
                n.flush(FLUSH_PATIENCE).await;
            }
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(Exit::Failed)
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
            // Said at once, not at the first operation (and logged there).
            let _ = engine.check_clock().await;
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
            if let Some(n) = &notifier {
                n.flush(FLUSH_PATIENCE).await;
            }
            tracing::info!(target: "runtime", ticks = outcome.ticks, "engine stopped");
            ExitCode::SUCCESS
        }
    }
}

/// Kubernetes Events, written as `engine.owner()` (`reportingInstance`);
/// never by a read-only engine, which has no owner and writes nothing.
pub(super) fn attach_events(
    engine: &mut crate::runtime::Engine,
    ports: &crate::ports::Ports,
    on: bool,
) {
    if !on || engine.mode == Mode::ReadOnly {
        return;
    }
    if let Some(owner) = engine.owner().map(String::from) {
        let events = crate::runtime::events::EventRecorder::start(ports.cluster.clone(), &owner);
        engine.set_event_recorder(events);
    }
}
