//! Shared by the integration tests: a console state grown from a seeded
//! simulated cluster on a manual clock, so screens are reproducible.
#![allow(dead_code)]

use k3s_autoscaler::app::keymap::Keymap;
use k3s_autoscaler::app::{App, Msg, Snapshot, update};
use k3s_autoscaler::config::Config;
use k3s_autoscaler::engine::Mode;
use k3s_autoscaler::harness::demo::{self, Demo, DemoOptions, Speed};
use k3s_autoscaler::runtime::Shutdown;
use k3s_autoscaler::runtime::settings::engine_settings;
use k3s_autoscaler::sim::ScenarioKind;
use std::collections::BTreeMap;
use std::time::Duration;

pub fn demo(scenario: ScenarioKind, seed: u64, read_only: bool) -> (Config, Demo) {
    let config = Config::default();
    let options = DemoOptions {
        scenario,
        seed,
        speed: Speed::Max,
        workers: None,
        start: None,
    };
    let demo = Demo::new(&config, &options, read_only);
    (config, demo)
}

/// Run the supervised (or read-only) engine `ticks` times on the seeded
/// flash sale and feed every snapshot to a fresh console state.
pub async fn seeded_app(read_only: bool, ticks: usize) -> App {
    let mode = if read_only {
        Mode::ReadOnly
    } else {
        Mode::Supervised
    };
    let (config, demo) = demo(ScenarioKind::FlashSale, 1, read_only);
    let mut engine = demo::engine_on(&demo, &config, mode, 1);
    let keymap = Keymap::new(read_only, &BTreeMap::new()).unwrap();
    let mut app = App::new(
        config.cluster.name.clone(),
        true,
        read_only,
        keymap,
        engine_settings(&config),
        demo.ports.clock.now(),
    );
    let shutdown = Shutdown::new();
    for _ in 0..ticks {
        let report = engine.tick(None, &shutdown).await;
        show(&demo, &engine, &mut app, report).await;
        demo.ports.clock.sleep(Duration::from_secs(15)).await;
    }
    update(&mut app, Msg::Now(demo.ports.clock.now()));
    app
}

/// Hand one tick's report to the console state, as the console driver does.
pub async fn show(
    demo: &Demo,
    engine: &k3s_autoscaler::runtime::Engine,
    app: &mut App,
    report: k3s_autoscaler::runtime::TickReport,
) {
    let cpu = demo
        .ports
        .metrics
        .node_cpu()
        .await
        .map_err(|e| e.to_string());
    let snapshot = Snapshot::build(report, cpu, engine.mode, engine.paused, None);
    update(app, Msg::Snapshot(Box::new(snapshot)));
}

/// The console as it draws on a `width`×`height` terminal, as text.
pub fn screen(app: &App, width: u16, height: u16) -> String {
    use k3s_autoscaler::ui::{ViewOptions, view};
    let mut terminal =
        ratatui::Terminal::new(ratatui::backend::TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|f| {
            view(
                f,
                app,
                ViewOptions {
                    log_timestamps: false,
                },
            )
        })
        .unwrap();
    terminal.backend().to_string()
}

pub mod own_process;
pub mod proxy;
pub mod service_model;
pub mod stack;
pub mod strict_ec2;

/// The moto server started by scripts/test.sh (or .ci/run): EC2's peer,
/// and a second DynamoDB.
pub fn moto_url() -> String {
    std::env::var("K3SA_MOTO_URL").unwrap_or_else(|_| {
        panic!("K3SA_MOTO_URL is not set: run the tests with scripts/test.sh, which starts moto_server on 127.0.0.1")
    })
}

/// DynamoDB Local (AWS's own emulator) started by scripts/test.sh: the
/// state store's peer. It refuses what the real service refuses; moto
/// does not.
pub fn dynamodb_url() -> String {
    std::env::var("K3SA_DYNAMODB_URL").unwrap_or_else(|_| {
        panic!("K3SA_DYNAMODB_URL is not set: run the tests with scripts/test.sh, which starts DynamoDB Local on 127.0.0.1 (scripts/peers.sh installs it: Java 17 and npm)")
    })
}

/// SDK config for DynamoDB Local with static test credentials.
pub async fn dynamodb_sdk() -> aws_config::SdkConfig {
    sdk_at(&dynamodb_url()).await
}

/// SDK config for any loopback AWS endpoint with static test credentials
/// (no provider chain, so no call ever leaves 127.0.0.1).
pub async fn sdk_at(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await
}

/// Environment for the binary: DynamoDB on DynamoDB Local and EC2 on moto,
/// through the SDK's per-service endpoint variables (the config then has
/// no `[aws] endpoint_url`, as on a real deployment).
pub fn aws_endpoint_env() -> [(&'static str, String); 2] {
    [
        ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_url()),
        ("AWS_ENDPOINT_URL_EC2", moto_url()),
    ]
}

/// A name no other test (or earlier run against the same server) uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{nanos:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// An AMI moto knows (it ships Ubuntu 14.04's, among others): moto runs
/// with AMI validation on (scripts/peers.sh), so a made-up id is refused
/// with `InvalidAMIID.NotFound`, as EC2 refuses it.
pub const MOTO_AMI: &str = "ami-1e749f67";

/// A config pointing every AWS call at moto.
pub fn moto_config(cluster: &str, table: &str) -> Config {
    let mut config = Config::default();
    config.cluster.name = cluster.to_string();
    config.dynamodb.table = table.to_string();
    config.aws.region = Some("us-east-1".into());
    config.aws.endpoint_url = Some(moto_url());
    config.ec2.ami = Some(MOTO_AMI.into());
    config.ec2.subnets = Vec::new();
    config
}

/// SDK config for moto with static test credentials.
pub async fn moto_sdk() -> aws_config::SdkConfig {
    sdk_at(&moto_url()).await
}

/// Environment for running the binary against moto.
pub const MOTO_ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// The simulator's façade served in-process on 127.0.0.1, on a world of
/// `workers` workers that runs in real time. Returns its base URL.
pub async fn facade(
    scenario: ScenarioKind,
    workers: u32,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<k3s_autoscaler::sim::World>>,
) {
    use k3s_autoscaler::adapters::SystemClock;
    use k3s_autoscaler::ports::Clock;
    use k3s_autoscaler::sim::SimClock;
    let start = SystemClock::new().now();
    let world = facade_world(scenario, workers, start);
    let clock: std::sync::Arc<dyn Clock> = std::sync::Arc::new(SimClock::scaled(start, 1.0));
    let url = serve_facade(world.clone(), clock).await;
    (url, world)
}

/// The world the façade tests serve: `workers` Ready workers from `start`.
pub fn facade_world(
    scenario: ScenarioKind,
    workers: u32,
    start: k3s_autoscaler::ports::Timestamp,
) -> std::sync::Arc<std::sync::Mutex<k3s_autoscaler::sim::World>> {
    use k3s_autoscaler::sim::{SimSettings, World};
    let config = Config::default();
    let settings = SimSettings {
        cluster: "conformance".into(),
        seed: 5,
        scenario,
        scale: 1.0,
        initial_workers: workers,
        boot_delay: Duration::from_secs(90),
        never_join_probability: 0.0,
        late_join_probability: 0.0,
        start,
        min_workers: config.policy.min_workers,
        max_workers: config.policy.max_workers,
        join_timeout: config.engine.join_timeout.get(),
        intent_ttl: config.engine.interval.get() * 2 + config.lock.lease.get(),
        tick: config.engine.interval.get(),
        warp: 1.0,
        external_fleet: false,
    };
    std::sync::Arc::new(std::sync::Mutex::new(World::new(settings)))
}

/// Serve `world` as the Kubernetes façade on a loopback port, on `clock`.
pub async fn serve_facade(
    world: std::sync::Arc<std::sync::Mutex<k3s_autoscaler::sim::World>>,
    clock: std::sync::Arc<dyn k3s_autoscaler::ports::Clock>,
) -> String {
    let router = k3s_autoscaler::sim::facade::Facade::new(world, clock).router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    url
}

/// A GET answered with JSON (a test peer's list or object).
pub async fn get_json(url: &str) -> serde_json::Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// The kube-rs adapter, connected to the API server (façade) at `url`.
pub async fn kube_client(url: &str) -> k3s_autoscaler::adapters::kube::KubeCluster {
    let config = k3s_autoscaler::config::KubernetesConfig {
        kubeconfig: Some(kubeconfig(url).display().to_string()),
        ..k3s_autoscaler::config::KubernetesConfig::default()
    };
    k3s_autoscaler::adapters::kube::KubeCluster::connect(&config)
        .await
        .unwrap()
}

/// A kubeconfig file for a plain-HTTP API server on loopback.
pub fn kubeconfig(server: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(unique("k3sa-kubeconfig"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: sim\n  cluster:\n    server: {server}\nusers:\n- name: sim\n  user: {{}}\ncontexts:\n- name: sim\n  context: {{cluster: sim, user: sim}}\ncurrent-context: sim\n"
        ),
    )
    .unwrap();
    path
}

/// Debian's Prometheus (the real binary, run directly) scraping `target`
/// every second, with its own tsdb; stopped on drop.
pub struct Prometheus {
    pub url: String,
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Prometheus {
    pub async fn start(target: &str) -> Prometheus {
        let bin = std::env::var("K3SA_PROMETHEUS_BIN")
            .ok()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "prometheus".into());
        let dir = std::env::temp_dir().join(unique("k3sa-prom"));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let host = target.trim_start_matches("http://");
        std::fs::write(
            dir.join("prometheus.yml"),
            format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: sim\n    honor_labels: true\n    static_configs:\n      - targets: [\"{host}\"]\n"),
        )
        .unwrap();
        let child = std::process::Command::new(&bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} ({e}): .ci/run installs Debian's prometheus")
            });
        let url = format!("http://127.0.0.1:{port}");
        let prometheus = Prometheus { url, child, dir };
        let http = reqwest::Client::new();
        for _ in 0..150 {
            if http
                .get(format!("{}/-/ready", prometheus.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return prometheus;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("prometheus did not become ready");
    }

    /// Wait until `query` returns at least one sample.
    pub async fn wait_for(&self, query: &str, timeout: Duration) {
        let http = reqwest::Client::new();
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            let answer = http
                .get(format!("{}/api/v1/query", self.url))
                .query(&[("query", query)])
                .send()
                .await;
            if let Ok(r) = answer
                && let Ok(v) = r.json::<serde_json::Value>().await
                && v["data"]["result"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("prometheus has no data for {query} after {timeout:?}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
