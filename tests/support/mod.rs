//! Shared by the integration tests: a console state grown from a seeded
//! simulated cluster on a manual clock, so screens are reproducible.
#![allow(dead_code)]

use k3s_autoscaler::app::keymap::Keymap;
use k3s_autoscaler::app::{App, Msg, Snapshot, update};
use k3s_autoscaler::config::Config;
use k3s_autoscaler::engine::Mode;
use k3s_autoscaler::runtime::Shutdown;
use k3s_autoscaler::runtime::demo::{self, Demo, DemoOptions, Speed};
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
        let cpu = demo
            .ports
            .metrics
            .node_cpu()
            .await
            .map_err(|e| e.to_string());
        let snapshot = Snapshot::build(report, cpu, engine.mode, engine.paused, None);
        update(&mut app, Msg::Snapshot(Box::new(snapshot)));
        demo.ports.clock.sleep(Duration::from_secs(15)).await;
    }
    update(&mut app, Msg::Now(demo.ports.clock.now()));
    app
}

/// The moto server started by scripts/test.sh (or .ci/run).
pub fn moto_url() -> String {
    std::env::var("K3SA_MOTO_URL").unwrap_or_else(|_| {
        panic!("K3SA_MOTO_URL is not set: run the tests with scripts/test.sh, which starts moto_server on 127.0.0.1")
    })
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

/// A config pointing every AWS call at moto.
pub fn moto_config(cluster: &str, table: &str) -> Config {
    let mut config = Config::default();
    config.cluster.name = cluster.to_string();
    config.dynamodb.table = table.to_string();
    config.aws.region = Some("us-east-1".into());
    config.aws.endpoint_url = Some(moto_url());
    config.ec2.ami = Some("ami-12345678".into());
    config.ec2.subnets = Vec::new();
    config
}

/// SDK config for moto with static test credentials (no provider chain,
/// so no call ever leaves 127.0.0.1).
pub async fn moto_sdk() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(moto_url())
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await
}

/// Environment for running the binary against moto.
pub const MOTO_ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];
