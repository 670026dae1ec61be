//! The loopback staging stack (tests/stack/up.sh) and the real binary on it.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_k3s-autoscaler");
pub const SIM: &str = env!("CARGO_BIN_EXE_k3s-sim");

pub struct Stack {
    pub dir: PathBuf,
    pub config: PathBuf,
    root: PathBuf,
}

impl Stack {
    /// Start a stack; `env` tunes it (STACK_SCALE, STACK_SCENARIO, …).
    /// The staging tests share one binary: as many stacks run at once as
    /// libtest has threads (`scripts/test.sh` gives the staging binary four:
    /// the stacks mostly wait on real time).
    pub fn up(env: &[(&str, &str)]) -> Stack {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::temp_dir().join(super::unique("k3sa-stack"));
        let mut cmd = Command::new(root.join("tests/stack/up.sh"));
        cmd.arg(&dir)
            .env("K3SA_BIN", BIN)
            .env("K3SA_SIM_BIN", SIM)
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("tests/stack/up.sh runs");
        let config = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
        let stack = Stack { dir, config, root };
        assert!(
            out.status.success() && stack.config.exists(),
            "up.sh failed"
        );
        stack
    }

    /// Replace `key = …` lines of the generated config.
    pub fn set(&self, key: &str, value: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let mut found = false;
        let lines: Vec<String> = text
            .lines()
            .map(|l| {
                if l.split('=').next().map(str::trim) == Some(key) {
                    found = true;
                    format!("{key} = {value}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        assert!(found, "{key} is not in the stack's config");
        std::fs::write(&self.config, lines.join("\n") + "\n").unwrap();
    }

    /// Add a line right under a `[section]` header of the generated config.
    pub fn add(&self, section: &str, line: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let header = format!("[{section}]");
        assert!(text.contains(&header), "no {header} in the stack's config");
        std::fs::write(
            &self.config,
            text.replacen(&header, &format!("{header}\n{line}"), 1),
        )
        .unwrap();
    }

    /// Where Prometheus expects the engine's `--metrics-addr`.
    pub fn metrics_addr(&self) -> String {
        std::fs::read_to_string(self.dir.join("metrics.addr"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// The simulator's Kubernetes façade (what the kubeconfig points at).
    pub fn sim_url(&self) -> String {
        std::fs::read_to_string(self.dir.join("sim.url"))
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn prometheus_url(&self) -> String {
        let text = std::fs::read_to_string(&self.config).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("url = "))
            .map(|v| v.trim_matches('"').to_string())
            .expect("[prometheus] url in the stack config")
    }

    /// Stop one peer of the stack (`sim`, `moto`, `dynamodb`, `prometheus`).
    pub fn stop(&self, peer: &str) {
        let pidfile = self.dir.join(format!("{peer}.pid"));
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let _ = Command::new("kill").arg(pid.trim()).status();
        let _ = std::fs::remove_file(pidfile);
    }

    /// One instant query through Prometheus's HTTP API: the first sample's value.
    pub fn query(&self, promql: &str) -> Option<f64> {
        let url = format!(
            "{}/api/v1/query?query={}",
            self.prometheus_url(),
            encode(promql)
        );
        let (status, body) = http_get(&url)?;
        if status != 200 {
            return None;
        }
        let v: Value = serde_json::from_str(&body).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// The variables DIR/env exports (credentials, per-service endpoints).
    pub fn env(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(self.dir.join("env"))
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Change (or add) one exported variable of DIR/env, for every command
    /// started afterwards (e.g. an endpoint through a proxy).
    pub fn set_env(&self, key: &str, value: &str) {
        let mut vars: Vec<(String, String)> =
            self.env().into_iter().filter(|(k, _)| k != key).collect();
        vars.push((key.to_string(), value.to_string()));
        let text: String = vars
            .iter()
            .map(|(k, v)| format!("export {k}={v}\n"))
            .collect();
        std::fs::write(self.dir.join("env"), text).unwrap();
    }

    fn var(&self, key: &str) -> String {
        self.env()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("{key} is not in the stack's env"))
    }

    /// EC2's peer (moto).
    pub fn moto_url(&self) -> String {
        self.var("AWS_ENDPOINT_URL_EC2")
    }

    /// The state table's peer (DynamoDB Local).
    pub fn dynamodb_url(&self) -> String {
        self.var("AWS_ENDPOINT_URL_DYNAMODB")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args).arg("-c").arg(&self.config);
        with_env(&mut cmd);
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn status(&self) -> Value {
        let out = self.command(&["status", "--json"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Start `--auto` with JSON logs to `name.log` (stderr to `name.err`).
    pub fn engine(&self, name: &str, env: &[(&str, &str)]) -> Engine {
        self.engine_with(name, &[], env)
    }

    /// The same, with more arguments.
    pub fn engine_with(&self, name: &str, args: &[&str], env: &[(&str, &str)]) -> Engine {
        let log = self.dir.join(format!("{name}.log"));
        let err = self.dir.join(format!("{name}.err"));
        let mut base = vec!["--auto", "--log-format", "json"];
        base.extend_from_slice(args);
        let mut cmd = self.command(&base);
        cmd.stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Engine {
            child: cmd.spawn().unwrap(),
            log,
            err,
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = Command::new(self.root.join("tests/stack/down.sh"))
            .arg(&self.dir)
            .status();
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// A plain HTTP/1.0 GET on 127.0.0.1 (status, body); `None` when nothing
/// answers. Enough for `/healthz`, `/metrics` and Prometheus's API.
pub fn http_get(url: &str) -> Option<(u16, String)> {
    http_send("GET", url, None)
}

/// The same with any method and an optional (content type, body): a
/// `kubectl annotate`'s merge patch, a façade test hook.
pub fn http_send(method: &str, url: &str, body: Option<(&str, &str)>) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    match body {
        Some((kind, body)) => write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .ok()?,
        None => write!(stream, "{method} {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?,
    }
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())?;
    Some((status, body))
}

pub fn with_env(cmd: &mut Command) -> &mut Command {
    for (k, v) in super::MOTO_ENV {
        cmd.env(k, v);
    }
    cmd.env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
        .env_remove("AWS_ENDPOINT_URL_EC2")
        .env_remove("KUBECONFIG")
        .env_remove("K3SA_FAILPOINT")
        .env_remove("K3SA_SIGTERM_AT")
}

pub struct Engine {
    pub child: Child,
    pub log: PathBuf,
    pub err: PathBuf,
}

impl Engine {
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Seen, &str) -> bool,
    ) -> Seen {
        let start = Instant::now();
        loop {
            let seen = read_log(&self.log);
            let err = std::fs::read_to_string(&self.err).unwrap_or_default();
            if done(&seen, &err) {
                return seen;
            }
            assert!(
                start.elapsed() < timeout,
                "waited {timeout:?} for {what}: {seen:#?}\nstderr: {err}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM (unless `already`), then the exit status within 10 s.
    pub fn terminate(&mut self, already: bool) -> std::process::ExitStatus {
        if !already {
            assert!(
                Command::new("kill")
                    .args(["-TERM", &self.child.id().to_string()])
                    .status()
                    .unwrap()
                    .success()
            );
        }
        self.exit_within(Duration::from_secs(10))
    }

    /// Wait up to `limit` for `needle` on the engine's stderr; the moment
    /// it was seen.
    pub fn stderr_line(&self, needle: &str, limit: Duration) -> Instant {
        let start = Instant::now();
        loop {
            let err = std::fs::read_to_string(&self.err).unwrap_or_default();
            if err.contains(needle) {
                return Instant::now();
            }
            assert!(
                start.elapsed() < limit,
                "no {needle:?} on stderr within {limit:?}: {err}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn exit_within(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "still running {limit:?} after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Default, Debug, Clone)]
pub struct Seen {
    /// op id → (kind, phases in order)
    pub ops: BTreeMap<String, (String, Vec<String>)>,
    pub evicted: Vec<String>,
    pub refused_by_pdb: usize,
    pub terminated: Vec<String>,
    pub launched: Vec<String>,
}

impl Seen {
    pub fn completed(&self, kind: &str) -> Vec<Vec<String>> {
        self.ops
            .values()
            .filter(|(k, phases)| k == kind && phases.last().map(String::as_str) == Some("Done"))
            .map(|(_, phases)| phases.clone())
            .collect()
    }

    pub fn phase_of(&self, op: &str) -> Option<&str> {
        self.ops
            .get(op)
            .and_then(|(_, p)| p.last())
            .map(String::as_str)
    }
}

pub fn read_log(path: &Path) -> Seen {
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
        if message.starts_with("launch ")
            && let Some(ids) = message.split(": ok: ").nth(1)
        {
            seen.launched.extend(ids.split(", ").map(String::from));
        }
    }
    seen
}

/// Every instance EC2 (moto) knows with this tag value, any state.
/// An EC2 client on moto (or on the strict proxy in front of it).
pub async fn ec2_client(moto: &str) -> aws_sdk_ec2::Client {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(moto)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await;
    aws_sdk_ec2::Client::new(&sdk)
}

/// The cluster's live (pending or running) workers in EC2: what
/// `max_workers` bounds. One DescribeInstances, not a `status` process.
pub async fn live_workers(ec2: &aws_sdk_ec2::Client, cluster: &str) -> usize {
    let filter = |name: &str, values: &[&str]| {
        values
            .iter()
            .fold(aws_sdk_ec2::types::Filter::builder().name(name), |f, v| {
                f.values(*v)
            })
            .build()
    };
    let out = ec2
        .describe_instances()
        .filters(filter("tag:k3s-autoscaler/cluster", &[cluster]))
        .filters(filter("instance-state-name", &["pending", "running"]))
        .send()
        .await
        .unwrap();
    out.reservations().iter().map(|r| r.instances().len()).sum()
}

pub async fn instances_tagged(moto: &str, key: &str, value: &str) -> Vec<(String, String)> {
    let ec2 = ec2_client(moto).await;
    let out = ec2
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name(format!("tag:{key}"))
                .values(value)
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| {
            (
                i.instance_id().unwrap_or_default().to_string(),
                i.state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_string())
                    .unwrap_or_default(),
            )
        })
        .collect()
}
