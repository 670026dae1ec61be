//! What observing a large cluster costs its API server: the kube adapter
//! against the simulator's façade (on loopback), first listing nodes, pods
//! and budgets every tick (`[kubernetes] watch = false`), then following
//! them with watches (the default), while 1 % of the pods change a minute.
//! Prints requests and bytes per minute for each, the changes the watches
//! carried, and the ratio.
//!
//!   cargo run --release --example api_cost -- --workers 1000 --pods-per-worker 30 --minutes 2
//!
//! The façade answers full pages here (up to the 500 the adapter asks
//! for) so that a 30 000-pod list is 60 pages, as on a real server.

use clap::Parser;
use k3s_autoscaler::adapters::SystemClock;
use k3s_autoscaler::adapters::kube::KubeCluster;
use k3s_autoscaler::config::{Config, KubernetesConfig};
use k3s_autoscaler::ports::{Clock, ClusterApi, Resources};
use k3s_autoscaler::sim::facade::Facade;
use k3s_autoscaler::sim::facade::api_cost::CostSnapshot;
use k3s_autoscaler::sim::{ScenarioKind, SimClock, SimSettings, World};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Ready workers in the simulated cluster.
    #[arg(long, default_value_t = 1000)]
    workers: u32,
    /// Pods per worker: the steady scenario's, topped up by a Job of
    /// small pods.
    #[arg(long, default_value_t = 30)]
    pods_per_worker: u32,
    /// Pods changing per minute, in percent of all pods (new Job pods,
    /// each a watch event), beside the scenario's own changes.
    #[arg(long, default_value_t = 1.0)]
    churn_percent: f64,
    /// Minutes measured per mode.
    #[arg(long, default_value_t = 2.0)]
    minutes: f64,
    /// Seconds between observations (the engine's interval).
    #[arg(long, default_value_t = 15)]
    interval: u64,
}

fn delta(a: CostSnapshot, b: CostSnapshot) -> CostSnapshot {
    CostSnapshot {
        requests: b.requests - a.requests,
        reads: b.reads - a.reads,
        watches: b.watches - a.watches,
        bytes: b.bytes - a.bytes,
        watch_bytes: b.watch_bytes - a.watch_bytes,
        watch_events: b.watch_events - a.watch_events,
    }
}

/// Every 6 s, a Job of `per_step` pods: `churn_percent` of the pods a
/// minute, as creations (each one ADDED, then MODIFIED when scheduled).
fn churn(world: &Arc<Mutex<World>>, per_step: u32) {
    // One name per Job over the whole run: a name used again would be
    // the same pods, no change at all.
    static STEP: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let step = STEP.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut w = world.lock().unwrap_or_else(|p| p.into_inner());
    let requests = Resources::new(10, 16 << 20);
    w.workload
        .add_job(&format!("churn-{step}"), per_step, requests);
}

async fn observe_for(
    kube: &KubeCluster,
    world: &Arc<Mutex<World>>,
    per_step: u32,
    minutes: f64,
    interval: Duration,
) -> (u32, u32) {
    let end = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
    let (mut ok, mut unknown) = (0, 0);
    let mut last_pods = 0;
    let mut next_churn = Instant::now();
    let mut next_look = Instant::now();
    while Instant::now() < end {
        if Instant::now() >= next_churn {
            churn(world, per_step);
            next_churn += Duration::from_secs(6);
        }
        if Instant::now() < next_look {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        next_look += interval;
        let seen = kube.observed().await;
        match (&seen.nodes, &seen.pods, &seen.pdbs) {
            (Ok(_), Ok(pods), Ok(_)) => {
                ok += 1;
                last_pods = pods.len();
            }
            (n, p, b) => {
                unknown += 1;
                let why = [n.as_ref().err(), p.as_ref().err(), b.as_ref().err()];
                eprintln!("Unknown: {:?}", why.into_iter().flatten().next());
            }
        }
    }
    println!("  {last_pods} pods at the last look");
    (ok, unknown)
}

fn line(name: &str, d: CostSnapshot, minutes: f64) -> String {
    let bytes = (d.bytes + d.watch_bytes) as f64;
    format!(
        "{name:<6} {:>8.1} requests/min {:>12.0} bytes/min ({} reads, {} watches, {} watch events)",
        d.requests as f64 / minutes,
        bytes / minutes,
        d.reads,
        d.watches,
        d.watch_events
    )
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let start = SystemClock::new().now();
    let config = Config::default();
    let settings = SimSettings {
        cluster: "api-cost".into(),
        seed: 1,
        scenario: ScenarioKind::Steady,
        scale: 1.0,
        initial_workers: args.workers,
        boot_delay: Duration::from_secs(90),
        never_join_probability: 0.0,
        late_join_probability: 0.0,
        start,
        min_workers: args.workers,
        max_workers: args.workers,
        join_timeout: config.engine.join_timeout.get(),
        intent_ttl: config.engine.interval.get() * 2 + config.lock.lease.get(),
        tick: config.engine.interval.get(),
        warp: 1.0,
        external_fleet: false,
    };
    let world = Arc::new(Mutex::new(World::new(settings)));
    {
        let mut w = world.lock().unwrap_or_else(|p| p.into_inner());
        let have = w.pods().len() as u32;
        let want = args.workers * args.pods_per_worker;
        if want > have {
            w.workload
                .add_job("filler", want - have, Resources::new(10, 16 << 20));
        }
    }
    let clock: Arc<dyn Clock> = Arc::new(SimClock::scaled(start, 1.0));
    let facade = Facade::new(world.clone(), clock).with_page_cap(500);
    let cost = facade.clone();
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let url = match listener.local_addr() {
        Ok(a) => format!("http://{a}"),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio::spawn(async move {
        let _ = axum::serve(listener, facade.router()).await;
    });
    let dir = std::env::temp_dir().join(format!("k3sa-api-cost-{}", std::process::id()));
    let kubeconfig = dir.join("kubeconfig");
    let written = std::fs::create_dir_all(&dir).and_then(|_| {
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: sim\n  cluster:\n    server: {url}\nusers:\n- name: sim\n  user: {{}}\ncontexts:\n- name: sim\n  context: {{cluster: sim, user: sim}}\ncurrent-context: sim\n"
            ),
        )
    });
    if let Err(e) = written {
        eprintln!("error: writing {}: {e}", kubeconfig.display());
        return ExitCode::FAILURE;
    }
    let k = KubernetesConfig {
        kubeconfig: Some(kubeconfig.display().to_string()),
        ..KubernetesConfig::default()
    };
    let kube = match KubeCluster::connect(&k).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let setup = Instant::now();
    let pods = kube.pods().await.map(|p| p.len()).unwrap_or(0);
    let nodes = kube.nodes().await.map(|n| n.len()).unwrap_or(0);
    println!(
        "cluster: {nodes} workers, {pods} pods (first list {:.1} s); {} min per mode, a look every {} s, {} % of pods changing a minute",
        setup.elapsed().as_secs_f64(),
        args.minutes,
        args.interval,
        args.churn_percent
    );
    let interval = Duration::from_secs(args.interval);
    let per_step = ((pods as f64 * args.churn_percent / 100.0) / 10.0).ceil() as u32;

    let before = cost.api_cost();
    let (ok, unknown) = observe_for(&kube, &world, per_step, args.minutes, interval).await;
    let listing = delta(before, cost.api_cost());
    println!(
        "{}; {ok} looks in step, {unknown} Unknown",
        line("list", listing, args.minutes)
    );

    let began = cost.api_cost();
    let started = Instant::now();
    kube.start_watches();
    while kube.observed().await.pods.is_err() {
        if started.elapsed() > Duration::from_secs(300) {
            eprintln!("error: the watches never came in step");
            return ExitCode::FAILURE;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let synced = cost.api_cost();
    let first = delta(began, synced);
    println!(
        "first lists of the watches: {} requests, {} bytes, in step after {:.1} s",
        first.requests,
        first.bytes + first.watch_bytes,
        started.elapsed().as_secs_f64()
    );
    let (ok, unknown) = observe_for(&kube, &world, per_step, args.minutes, interval).await;
    let watching = delta(synced, cost.api_cost());
    println!(
        "{}; {ok} looks in step, {unknown} Unknown",
        line("watch", watching, args.minutes)
    );
    let ratio = (listing.bytes + listing.watch_bytes) as f64
        / ((watching.bytes + watching.watch_bytes).max(1)) as f64;
    println!("bytes: {ratio:.0}x fewer with watches");
    let _ = std::fs::remove_dir_all(&dir);
    ExitCode::SUCCESS
}
