//! The whole real path on a loopback staging stack: moto (EC2, DynamoDB),
//! the simulator's Kubernetes façade, Debian's real Prometheus, and the
//! real `k3s-autoscaler --auto`. Load rises → pods go unschedulable →
//! instances are launched in moto → the façade registers their nodes → the
//! engine verifies them Ready; load falls → a node is cordoned, drained
//! through evictions (PDB refusals retried) and its instance terminated.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_k3s-autoscaler");
const SIM: &str = env!("CARGO_BIN_EXE_k3s-sim");

struct Stack {
    dir: PathBuf,
    root: PathBuf,
}

impl Stack {
    fn up() -> (Stack, PathBuf) {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::temp_dir().join(support::unique("k3sa-stack"));
        let out = Command::new(root.join("tests/stack/up.sh"))
            .arg(&dir)
            .env("K3SA_BIN", BIN)
            .env("K3SA_SIM_BIN", SIM)
            .env("STACK_SCALE", "0.3")
            .env("STACK_SPEED", "20")
            .stderr(Stdio::inherit())
            .output()
            .expect("tests/stack/up.sh runs");
        let stack = Stack { dir, root };
        assert!(out.status.success(), "up.sh failed");
        let config = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        assert!(config.exists(), "{config:?}");
        (stack, config)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = Command::new(self.root.join("tests/stack/down.sh"))
            .arg(&self.dir)
            .status();
    }
}

struct Engine(Child);

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn with_env(cmd: &mut Command) -> &mut Command {
    for (k, v) in support::MOTO_ENV {
        cmd.env(k, v);
    }
    cmd.env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("KUBECONFIG")
}

#[derive(Default, Debug)]
struct Seen {
    /// op id → (kind, phases in order)
    ops: BTreeMap<String, (String, Vec<String>)>,
    evicted: Vec<String>,
    refused_by_pdb: usize,
    terminated: Vec<String>,
}

fn read_log(path: &Path) -> Seen {
    let mut seen = Seen::default();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let message = v["message"].as_str().unwrap_or("");
        if let (Some(op), Some(phase)) = (v["op_id"].as_str(), v["phase"].as_str()) {
            let kind = message.split_whitespace().next().unwrap_or("").to_string();
            let entry = seen.ops.entry(op.to_string()).or_insert((kind, vec![]));
            entry.1.push(phase.to_string());
        }
        if message.starts_with("evict ") && message.ends_with(": evicted") {
            seen.evicted.push(message.to_string());
        }
        if message.starts_with("evict ") && message.contains(": 429:") {
            seen.refused_by_pdb += 1;
        }
        if let Some(rest) = message.strip_prefix("terminate ")
            && rest.ends_with(": ok")
        {
            seen.terminated
                .push(rest.trim_end_matches(": ok").to_string());
        }
    }
    seen
}

fn completed(seen: &Seen, kind: &str) -> Vec<Vec<String>> {
    seen.ops
        .values()
        .filter(|(k, phases)| k == kind && phases.last().map(String::as_str) == Some("Done"))
        .map(|(_, phases)| phases.clone())
        .collect()
}

fn status(config: &Path) -> Value {
    let out =
        with_env(Command::new(BIN).args(["status", "--json", "-c", config.to_str().unwrap()]))
            .output()
            .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn staging_end_to_end_scale_up_then_down_through_evictions() {
    let (stack, config) = Stack::up();

    // `check` sees all four backends.
    let check = with_env(Command::new(BIN).args(["check", "-c", config.to_str().unwrap()]))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&check.stdout).to_string();
    assert!(
        check.status.success(),
        "check failed:\n{table}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for backend in ["prometheus", "kubernetes", "ec2", "dynamodb"] {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(backend) && l.contains(" ok ")),
            "{backend} not ok:\n{table}"
        );
    }
    let before = status(&config);
    let initial = before["workers"].as_array().unwrap().len();
    assert_eq!(initial, 3);

    let log = stack.dir.join("engine.log");
    let child = with_env(
        Command::new(BIN)
            .args([
                "--auto",
                "--log-format",
                "json",
                "-c",
                config.to_str().unwrap(),
            ])
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::inherit()),
    )
    .spawn()
    .unwrap();
    let mut engine = Engine(child);

    let start = Instant::now();
    let seen = loop {
        let seen = read_log(&log);
        let drained_with_evictions =
            !completed(&seen, "scale-down").is_empty() && !seen.evicted.is_empty();
        if !completed(&seen, "scale-up").is_empty() && drained_with_evictions {
            break seen;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no scale-up and evicting scale-down within 5 min: {seen:#?}"
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    // SIGTERM: exits 0 within 10 s, the lock released.
    assert!(
        Command::new("kill")
            .args(["-TERM", &engine.0.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let stopped = Instant::now();
    let exit = loop {
        if let Some(code) = engine.0.try_wait().unwrap() {
            break code;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "engine still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "engine exit: {exit:?}");
    let seen = std::mem::take(&mut { seen });

    for phases in completed(&seen, "scale-up") {
        assert_eq!(
            phases,
            ["LaunchIntended", "Launched", "Verifying", "Done"],
            "{seen:#?}"
        );
    }
    for phases in completed(&seen, "scale-down") {
        assert_eq!(
            phases,
            ["CordonIntended", "Draining", "TerminateIntended", "Done"],
            "{seen:#?}"
        );
    }

    // What EC2 and Kubernetes say at the end agrees with what was done.
    let after = status(&config);
    let live: Vec<String> = after["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_string())
        .collect();
    let launched: usize = seen
        .ops
        .values()
        .filter(|(k, p)| k == "scale-up" && p.contains(&"Launched".to_string()))
        .count();
    assert!(launched >= 1);
    for gone in &seen.terminated {
        assert!(
            !live.contains(gone),
            "terminated {gone} is still live in EC2"
        );
    }
    let up_instances: usize = {
        let text = std::fs::read_to_string(&log).unwrap();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| {
                v["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("launch ") && m.contains(": ok: "))
            })
            .map(|v| {
                v["message"]
                    .as_str()
                    .unwrap()
                    .split(": ok: ")
                    .nth(1)
                    .unwrap()
                    .split(", ")
                    .count()
            })
            .sum()
    };
    assert_eq!(
        live.len(),
        initial + up_instances - seen.terminated.len(),
        "live instances {live:?} vs {seen:#?}"
    );
    // Nodes: every live worker is a Ready node; terminated ones are gone
    // (deleted by the engine) or NotReady.
    std::thread::sleep(Duration::from_secs(2));
    let nodes = status(&config)["nodes"].as_array().unwrap().clone();
    for id in &live {
        assert!(
            nodes
                .iter()
                .any(|n| n["instance_id"] == id.as_str() && n["ready"] == true),
            "{id} has no Ready node: {nodes:?}"
        );
    }
    assert_eq!(
        after["lock"]["held"], false,
        "the lock was released on SIGTERM"
    );
    println!(
        "staging: {} scale-up(s), {} scale-down(s), {} evictions ({} PDB refusals retried), final {} workers",
        completed(&seen, "scale-up").len(),
        completed(&seen, "scale-down").len(),
        seen.evicted.len(),
        seen.refused_by_pdb,
        live.len()
    );
}
