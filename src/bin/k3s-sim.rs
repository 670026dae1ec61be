//! k3s-sim: the simulated cluster behind a Kubernetes API façade, for the
//! staging stack (tests/stack/up.sh). It serves, on loopback only, the
//! subset of the Kubernetes API the kube adapter uses and `/metrics` for
//! Prometheus; its workers are the managed instances it finds in EC2
//! (moto), which register as nodes after a boot delay.

use clap::Parser;
use k3s_autoscaler::adapters::SystemClock;
use k3s_autoscaler::adapters::aws::sdk_config;
use k3s_autoscaler::adapters::ec2::Ec2Fleet;
use k3s_autoscaler::adapters::user_data::DEFAULT_TEMPLATE;
use k3s_autoscaler::config::{AwsConfig, Ec2Config, parse_duration};
use k3s_autoscaler::exit::Exit;
use k3s_autoscaler::ports::Clock;
use k3s_autoscaler::sim::facade::{Facade, run_ec2_sync};
use k3s_autoscaler::sim::{ScenarioKind, SimClock, SimSettings, World};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "k3s-sim",
    about = "Simulated K3s cluster behind a Kubernetes API façade (loopback only)"
)]
struct Args {
    /// Address to serve on; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// EC2 endpoint to take the workers from (moto).
    #[arg(long, value_name = "URL")]
    ec2_endpoint: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Cluster name: workers are the instances tagged with it.
    #[arg(long, default_value = "k3s")]
    cluster: String,
    #[arg(long, default_value = "flash-sale", value_parser = |s: &str| s.parse::<ScenarioKind>())]
    scenario: ScenarioKind,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The workload's clock runs this many times faster than real time.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Multiplies the scenario's demand.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Launch to Ready node (jittered ±30 %).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    boot_delay: Duration,
    /// How often EC2 is polled.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    poll: Duration,
    /// Write the base URL here once listening (for scripts).
    #[arg(long, value_name = "PATH")]
    ready_file: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "error: k3s-sim serves on loopback only; {} is not",
            args.listen
        );
        return ExitCode::from(Exit::Usage);
    }
    if !(args.speed.is_finite() && args.speed > 0.0 && args.scale.is_finite() && args.scale > 0.0) {
        eprintln!("error: --speed and --scale must be positive");
        return ExitCode::from(Exit::Usage);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(Exit::Failed);
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(Exit::Failed)
        }
    }
}

async fn serve(args: Args) -> Result<(), String> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .try_init();
    let start = SystemClock::new().now();
    // Real time for every timestamp it reports (the engine compares them
    // with its own clock); only the workload runs faster.
    let clock: Arc<dyn Clock> = Arc::new(SimClock::scaled(start, 1.0));
    let settings = SimSettings {
        cluster: args.cluster.clone(),
        seed: args.seed,
        scenario: args.scenario,
        scale: args.scale,
        initial_workers: 0,
        boot_delay: args.boot_delay,
        never_join_probability: 0.0,
        late_join_probability: 0.0,
        start,
        min_workers: 0,
        max_workers: u32::MAX,
        join_timeout: Duration::from_secs(600),
        intent_ttl: Duration::from_secs(86_400),
        tick: Duration::from_secs(15),
        warp: args.speed,
        external_fleet: true,
    };
    let world = Arc::new(Mutex::new(World::new(settings)));
    let aws = AwsConfig {
        region: Some(args.region.clone()),
        profile: None,
        endpoint_url: Some(args.ec2_endpoint.clone()),
    };
    let sdk = sdk_config(&aws).await;
    let ec2 = Arc::new(Ec2Fleet::new(
        &sdk,
        &args.cluster,
        &Ec2Config::default(),
        DEFAULT_TEMPLATE.into(),
    ));
    tokio::spawn(run_ec2_sync(world.clone(), clock.clone(), ec2, args.poll));

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("binding {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let url = format!("http://{addr}");
    println!(
        "k3s-sim: serving cluster \"{}\" on {url} ({} scenario, speed {}×)",
        args.cluster, args.scenario, args.speed
    );
    if let Some(path) = &args.ready_file {
        std::fs::write(path, &url).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    let app = Facade::new(world, clock).router();
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}
