//! Log output: human text or one JSON object per line, to stdout.

use crate::ports::Clock;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// Log timestamps from the run's clock: simulated time in `--demo`, so a
/// log line says when in the simulated day it happened.
#[derive(Clone)]
pub struct ClockTimer(pub Arc<dyn Clock>);

impl FormatTime for ClockTimer {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        w.write_str(&self.0.now().to_rfc3339())
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `RUST_LOG` overrides the default of `info` for this crate and `warn`
/// for the libraries under it.
pub fn default_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("warn,k3s_autoscaler=info,engine=info,lock=info,sim=info,runtime=info,audit=info,ec2=info")
    })
}

/// Stdout that treats a closed pipe (`| head`) as a sink: the engine goes
/// on, and the log layer does not report every later line as a failure.
struct ClosablePipe;

impl std::io::Write for ClosablePipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::io::stdout().write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(buf.len()),
            other => other,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match std::io::stdout().flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }
}

pub fn init_stdout(format: LogFormat, clock: Arc<dyn Clock>) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(default_filter())
        .with_timer(ClockTimer(clock))
        .with_writer(|| ClosablePipe);
    // A second init (tests) is not an error worth failing on.
    let _ = match format {
        LogFormat::Text => builder.with_target(true).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_target(true)
            .try_init(),
    };
}

/// Logs of one-shot commands go to stderr: stdout carries their answer.
pub fn init_stderr() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(default_filter())
        .with_writer(std::io::stderr)
        .with_target(true)
        .try_init();
}

/// The console's logging: events go to the log pane (tui-logger), never to
/// stdout, which the screen owns.
pub fn init_console() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    tui_logger::set_default_level(tui_logger::LevelFilter::Info);
    let _ = tracing_subscriber::registry()
        .with(default_filter())
        .with(tui_logger::TuiTracingSubscriberLayer)
        .try_init();
}
