use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Before anything else: whatever panics, the terminal comes back and
    // the operator gets one sentence rather than a backtrace.
    k3s_autoscaler::runtime::terminal::install_panic_hook(
        k3s_autoscaler::runtime::terminal::restore,
    );
    k3s_autoscaler::runtime::malloc::limit_arenas();
    let cli = k3s_autoscaler::cli::Cli::parse();
    k3s_autoscaler::cli::run(cli)
}
