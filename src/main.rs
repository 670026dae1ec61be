use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = k3s_autoscaler::cli::Cli::parse();
    k3s_autoscaler::cli::run(cli)
}
