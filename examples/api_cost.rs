//! What observing a large cluster costs its API server: the kube adapter
//! against the simulator's façade (on loopback), first listing nodes, pods
//! and budgets every tick (`[kubernetes] watch = false`), then following
//! them with watches (the default), while 1 % of the pods change a minute.
//! Prints requests and bytes per minute for each, the changes the watches
//! carried, and the ratio.
//!
//!   cargo run --release --example api_cost -- --workers 1000 --pods-per-worker 30 --minutes 2
//!   cargo run --release --example api_cost -- --workers 5000 --modes watch --minutes 3
//!
//! The simulated cluster and its façade run in a child process (this
//! example started again with `--serve`), so the resident memory printed
//! for this process is the adapter's alone: its HTTP client, the watch
//! caches and what each look copies out of them, as in the engine.
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
use std::io::{BufRead, Read, Write};
use std::process::{Child, Command, ExitCode, Stdio};
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
    /// What to measure, in order: `list` (a LIST of every kind per look),
    /// `watch` (the watch caches). At 5 000 workers a look by lists takes
    /// longer than the interval.
    #[arg(long, value_delimiter = ',', default_value = "list,watch")]
    modes: Vec<String>,
    /// The child's role: serve the simulated cluster, print its URL, and
    /// change 1 % of its pods a minute until standard input closes.
    #[arg(long, hide = true)]
    serve: bool,
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

/// A Job of `per_step` pods: each one ADDED, then MODIFIED when scheduled.
fn churn(world: &Arc<Mutex<World>>, step: u32, per_step: u32) {
    let mut w = world.lock().unwrap_or_else(|p| p.into_inner());
    let requests = Resources::new(10, 16 << 20);
    // One name per Job over the whole run: a name used again would be
    // the same pods, no change at all.
    w.workload
        .add_job(&format!("churn-{step}"), per_step, requests);
}

/// The child: the cluster and its façade. Prints the URL, then adds a Job
/// every 6 s (`churn_percent` of the pods a minute) until its standard
/// input closes (the parent is gone or done).
async fn serve(args: &Args) -> ExitCode {
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
    let pods = {
        let mut w = world.lock().unwrap_or_else(|p| p.into_inner());
        let have = w.pods().len() as u32;
        let want = args.workers * args.pods_per_worker;
        if want > have {
            w.workload
                .add_job("filler", want - have, Resources::new(10, 16 << 20));
            // Scheduled before the façade serves (the model a few seconds
            // ahead of its clock, which then catches up): the steady state
            // the figure is stated for, not a first burst of tens of
            // thousands of changes that no watch cache's log holds.
            w.advance_to(start.plus(Duration::from_secs(10)));
        }
        want.max(have)
    };
    let clock: Arc<dyn Clock> = Arc::new(SimClock::scaled(start, 1.0));
    let facade = Facade::new(world.clone(), clock).with_page_cap(500);
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(a) => {
            println!("http://{a}");
            let _ = std::io::stdout().flush();
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    tokio::spawn(async move {
        let _ = axum::serve(listener, facade.router()).await;
    });
    let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = closed.clone();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let per_step = ((f64::from(pods) * args.churn_percent / 100.0) / 10.0).ceil() as u32;
    let mut step = 0;
    while !closed.load(std::sync::atomic::Ordering::Relaxed) {
        churn(&world, step, per_step);
        step += 1;
        for _ in 0..30 {
            if closed.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    ExitCode::SUCCESS
}

/// `GET /debug/api-cost` of the child's façade, over a plain connection.
fn api_cost(url: &str) -> Result<CostSnapshot, String> {
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET /debug/api-cost HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| e.to_string())?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .ok_or("no body")?;
    serde_json::from_str(body).map_err(|e| format!("{e}: {body}"))
}

/// Resident and peak resident memory of a process, in MB (`/proc`).
fn memory(pid: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| -> f64 {
        status
            .lines()
            .find_map(|l| {
                l.strip_prefix(key)?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(f64::NAN)
    };
    format!(
        "RSS {:.0} MB (peak {:.0} MB)",
        kb("VmRSS:") / 1024.0,
        kb("VmHWM:") / 1024.0
    )
}

async fn observe_for(kube: &KubeCluster, minutes: f64, interval: Duration) -> (u32, u32, usize) {
    let end = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
    let (mut ok, mut unknown, mut last_pods) = (0, 0, 0);
    while Instant::now() < end {
        let look = Instant::now();
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
        drop(seen);
        if let Some(rest) = interval.checked_sub(look.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    (ok, unknown, last_pods)
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
    // As the binary does: the adapter's memory is measured as it runs.
    k3s_autoscaler::runtime::malloc::limit_arenas();
    let args = Args::parse();
    // The adapter's own account of its watches (relists and why), on
    // standard error; `RUST_LOG=kubernetes=debug` for every relist.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
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
    if args.serve {
        return runtime.block_on(serve(&args));
    }
    let child = match spawn_cluster() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: starting the cluster's process: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(measure(&args, child.1));
    let mut child = child.0;
    // Its standard input closes with it: the child's cue to stop.
    drop(child.stdin.take());
    let _ = child.wait();
    code
}

/// This example again, with `--serve` and the same arguments; the URL it
/// prints first.
fn spawn_cluster() -> Result<(Child, String), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(std::env::args().skip(1))
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut url = String::new();
    let out = child.stdout.take().ok_or("no stdout")?;
    std::io::BufReader::new(out)
        .read_line(&mut url)
        .map_err(|e| e.to_string())?;
    let url = url.trim().to_string();
    if !url.starts_with("http://127.0.0.1:") {
        let _ = child.kill();
        return Err(format!("the child printed {url:?}, not its URL"));
    }
    let pid = child.id().to_string();
    Ok((child, format!("{url} {pid}")))
}

async fn measure(args: &Args, child: String) -> ExitCode {
    let (url, child_pid) = child.split_once(' ').unwrap_or((&child, ""));
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
    let code = measure_with(args, url, child_pid, &kubeconfig).await;
    let _ = std::fs::remove_dir_all(&dir);
    code
}

async fn measure_with(
    args: &Args,
    url: &str,
    child_pid: &str,
    kubeconfig: &std::path::Path,
) -> ExitCode {
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
    let cost = |what: &str| {
        api_cost(url).map_err(|e| eprintln!("error: the façade's counters ({what}): {e}"))
    };
    println!(
        "cluster: {} workers × {} pods, {} min per mode, a look every {} s, {} % of pods changing a minute; this process: {}",
        args.workers,
        args.pods_per_worker,
        args.minutes,
        args.interval,
        args.churn_percent,
        memory("self")
    );
    let interval = Duration::from_secs(args.interval);
    if args.modes.iter().position(|m| m == "list") > args.modes.iter().position(|m| m == "watch")
        && args.modes.iter().any(|m| m == "watch")
    {
        // Once the watches run, every look is served from them.
        eprintln!("error: --modes: list must come before watch");
        return ExitCode::FAILURE;
    }
    let mut per_mode = Vec::new();
    for mode in &args.modes {
        let Ok(began) = cost("start") else {
            return ExitCode::FAILURE;
        };
        match mode.as_str() {
            "list" => {}
            "watch" => {
                let started = Instant::now();
                kube.start_watches();
                while kube.observed().await.pods.is_err() {
                    if started.elapsed() > Duration::from_secs(600) {
                        eprintln!("error: the watches never came in step");
                        return ExitCode::FAILURE;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let Ok(synced) = cost("synced") else {
                    return ExitCode::FAILURE;
                };
                let first = delta(began, synced);
                println!(
                    "first lists of the watches: {} requests, {} bytes, in step after {:.1} s; this process: {}",
                    first.requests,
                    first.bytes + first.watch_bytes,
                    started.elapsed().as_secs_f64(),
                    memory("self")
                );
                // Steady state, as the figure is stated: the first
                // watches' minute is not counted.
                let (_, _, _) = observe_for(&kube, 1.0, interval).await;
            }
            other => {
                eprintln!("error: --modes takes list and watch, not {other:?}");
                return ExitCode::FAILURE;
            }
        }
        let Ok(from) = cost("from") else {
            return ExitCode::FAILURE;
        };
        let (ok, unknown, pods) = observe_for(&kube, args.minutes, interval).await;
        let Ok(to) = cost("to") else {
            return ExitCode::FAILURE;
        };
        let d = delta(from, to);
        println!(
            "{}; {ok} looks in step, {unknown} Unknown, {pods} pods at the last; this process: {}; the cluster's: {}",
            line(mode, d, args.minutes),
            memory("self"),
            memory(child_pid)
        );
        if mode == "watch" {
            // What the executor reads before each operation: every pod,
            // listed now. Those the cache holds unchanged are shared with
            // it, so the process should not grow by a cluster's worth.
            let fresh = kube.pods().await.map(|p| p.len());
            println!(
                "a fresh list of every pod beside the watches: {fresh:?}; this process: {}",
                memory("self")
            );
        }
        per_mode.push((mode.clone(), d));
    }
    if let (Some((_, l)), Some((_, w))) = (
        per_mode.iter().find(|(m, _)| m == "list"),
        per_mode.iter().find(|(m, _)| m == "watch"),
    ) {
        let ratio = (l.bytes + l.watch_bytes) as f64 / ((w.bytes + w.watch_bytes).max(1)) as f64;
        println!("bytes: {ratio:.0}x fewer with watches");
    }
    ExitCode::SUCCESS
}
