//! The real binary: configuration errors, the headless demo, signals.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::stack::BIN;

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

fn config_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("k3sa-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn every_kind_of_bad_config_exits_2_naming_file_and_key() {
    // 300 characters: longer than EC2 allows a tag value.
    let long_tag = format!("[ec2]\ntags = {{ team = \"{}\" }}\n", "x".repeat(300));
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "syntax.toml",
            "[policy]\nmin_workers = = 2\n",
            &["syntax.toml", "line 2", "TOML syntax error"],
        ),
        (
            "type.toml",
            "[policy]\nmax_workers = \"ten\"\n",
            &["type.toml", "line 2", "policy.max_workers"],
        ),
        (
            "unknown.toml",
            "[drain]\ntimeout = \"5m\"\nevict_statefulset = true\n",
            &["unknown.toml", "line 3", "drain.evict_statefulset"],
        ),
        (
            "predictive.toml",
            "[policy.predictive]\nenabled = \"yes\"\n",
            &["predictive.toml", "line 2", "policy.predictive.enabled"],
        ),
        (
            "predictive-key.toml",
            "[policy.predictive]\nenabeld = true\n",
            &["predictive-key.toml", "line 2", "policy.predictive.enabeld"],
        ),
        (
            "minmax.toml",
            "[policy]\nmin_workers = 6\nmax_workers = 4\n",
            &[
                "minmax.toml",
                "line 2",
                "policy.min_workers",
                "greater than",
            ],
        ),
        (
            "cpu.toml",
            "[policy]\ncpu_up_percent = 40\ncpu_down_percent = 60\n",
            &["cpu.toml", "line 3", "policy.cpu_down_percent"],
        ),
        (
            "zero.toml",
            "[lock]\nlease = \"0s\"\n",
            &["zero.toml", "line 2", "lock.lease", "greater than zero"],
        ),
        (
            "negative.toml",
            "[policy]\nidle_for = \"-10m\"\n",
            &["negative.toml", "line 2", "policy.idle_for", "negative"],
        ),
        // What EC2 refuses at launch is refused at load.
        (
            "awstag.toml",
            "[ec2.tags]\nteam = \"shop\"\n\"aws:owner\" = \"me\"\n",
            &["awstag.toml", "line 3", "ec2.tags.aws:owner", "\"aws:\""],
        ),
        (
            "longtag.toml",
            &long_tag,
            &["longtag.toml", "line 2", "ec2.tags.team", "at most 256"],
        ),
        (
            "owntag.toml",
            "[ec2.tags]\n\"k3s-autoscaler/cluster\" = \"other\"\n",
            &[
                "owntag.toml",
                "line 2",
                "ec2.tags.k3s-autoscaler/cluster",
                "set by k3s-autoscaler",
            ],
        ),
    ];
    for (name, text, expected) in cases {
        let path = config_file(name, text);
        let out = run(&["--demo", "--auto", "--once", "-c", path.to_str().unwrap()]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        for needle in *expected {
            assert!(
                err.contains(needle),
                "{name}: expected {needle:?} in {err:?}"
            );
        }
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(
            out.stdout.is_empty(),
            "{name}: nothing runs on a bad config"
        );
    }
    let out = run(&["--demo", "--auto", "--once", "-c", "/nonexistent/k3s.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/k3s.toml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_example_config_is_accepted() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml");
    let out = run(&["--demo", "--auto", "--once", "-c", example]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn bad_flags_exit_2() {
    for args in [
        &["--demo", "--auto", "--speed", "fast"][..],
        &["--demo", "--auto", "--scenario", "black-friday"][..],
        &["--demo", "--auto", "--days", "-1"][..],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn headless_demo_day_ends_with_the_json_summary() {
    let out = run(&[
        "--demo",
        "--auto",
        "--scenario",
        "diurnal",
        "--seed",
        "7",
        "--speed",
        "max",
        "--ticks",
        "5760",
        "--log-format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    for line in &lines {
        let _: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    let s = &last["summary"];
    assert_eq!(s["simulated_hours"], 24.0);
    assert!(s["scale_ups"].as_u64().unwrap() >= 1, "{s}");
    assert!(s["scale_downs"].as_u64().unwrap() >= 1, "{s}");
    assert!(s["peak_workers"].as_u64().unwrap() <= 10, "{s}");
    assert_eq!(s["invariant_violations"], 0);
    for key in [
        "worker_hours",
        "pending_pod_minutes",
        "failed_operations",
        "aborted_operations",
    ] {
        assert!(s.get(key).is_some(), "summary lacks {key}: {s}");
    }
    // One line per decision: 5760 ticks, 5760 decisions.
    let decisions = lines.iter().filter(|l| l.contains("\"decision: ")).count();
    assert_eq!(decisions, 5760);
    // Log time is simulated time.
    assert!(lines[0].contains("2026-01-05T00:00:00"), "{}", lines[0]);
}

#[test]
fn compare_with_the_oracle_reports_every_run_against_it() {
    let out = run(&[
        "--demo",
        "--auto",
        "--scenario",
        "diurnal-flash",
        "--seed",
        "1",
        "--speed",
        "max",
        "--days",
        "1",
        "--compare",
        "seed-cadence,oracle",
        "--log-format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let c = &last["comparison"];
    let f = |run: &str, key: &str| {
        c[run][key]
            .as_f64()
            .unwrap_or_else(|| panic!("{run}.{key} in {c}"))
    };
    assert_eq!(f("oracle", "worker_hours_vs_oracle"), 1.0);
    assert_eq!(f("oracle", "pending_above_oracle"), 0.0);
    // Perfect foresight on a day max_workers does not bind: next to
    // nothing waits, and no policy waits less.
    assert!(f("oracle", "pending_pod_minutes") < 20.0, "{c}");
    for run in ["engine", "seed-cadence"] {
        assert!(f(run, "pending_above_oracle") > 0.0, "{run}: {c}");
        let ratio = f(run, "worker_hours") / f("oracle", "worker_hours");
        assert!(
            (f(run, "worker_hours_vs_oracle") - ratio).abs() < 0.001,
            "{c}"
        );
        let above = f(run, "pending_pod_minutes") - f("oracle", "pending_pod_minutes");
        assert!(
            (f(run, "pending_above_oracle") - above).abs() < 0.001,
            "{c}"
        );
    }
    // The table for people, on stderr, carries the same columns.
    assert!(stderr(&out).contains("wh/oracle"), "{}", stderr(&out));
}

#[test]
fn auto_read_only_logs_what_it_would_do_and_changes_nothing() {
    let out = run(&[
        "--demo",
        "--auto",
        "--read-only",
        "--scenario",
        "flash-sale",
        "--speed",
        "max",
        "--ticks",
        "200",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("decision: would scale-up"), "{stdout}");
    let last = stdout.lines().last().unwrap();
    assert!(last.contains("0 scale-ups, 0 scale-downs"), "{last}");
    // A read-only engine that so much as tried to take the lock would be an
    // invariant-8 violation in this count.
    assert!(last.ends_with(", 0 invariant violations"), "{last}");
}

#[test]
fn sigterm_stops_cleanly_with_exit_0() {
    use std::io::BufRead;
    let mut child = Command::new(BIN)
        .args(["--demo", "--auto", "--speed", "60"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the started line (logged after the signal handler is
    // installed), not for a fixed time a loaded machine may not honour.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("no started line within 120 s");
        let started = line.contains("simulated cluster") && line.contains("started");
        lines.push(line);
        if started {
            break;
        }
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let sent = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "did not exit within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = sent.elapsed();
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(
        took < Duration::from_secs(10),
        "SIGTERM to exit took {took:?}"
    );
    let stdout = lines.join("\n");
    assert!(stdout.contains("SIGTERM"), "{stdout}");
    assert!(lines.last().unwrap().starts_with("summary:"), "{stdout}");
}

#[test]
fn demo_status_json_shows_every_reconciliation_class_of_a_drifted_cluster() {
    let out = run(&["--demo", "--drift", "--seed", "4", "status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut classes: Vec<&str> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["class"].as_str().unwrap())
        .collect();
    classes.sort();
    assert_eq!(
        classes,
        [
            "ghost_node",
            "never_joined",
            "operation_instances_gone",
            "orphan_instance",
            "stray_cordon"
        ]
    );
    for f in report["findings"].as_array().unwrap() {
        assert!(f["text"].as_str().is_some_and(|t| !t.is_empty()), "{f}");
        assert!(f["fix"].as_str().is_some_and(|t| !t.is_empty()), "{f}");
    }
    // Without drift, a fresh cluster has nothing to reconcile.
    let out = run(&["--demo", "status", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["findings"], serde_json::json!([]));
    // Text mode lists them too.
    let out = run(&["--demo", "--drift", "status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("reconcile   5 finding(s)"), "{text}");
    // The other commands need the real backends.
    let out = run(&["--demo", "pause", "--for", "5m", "--reason", "x"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn version_and_completions_print_without_a_config() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("k3s-autoscaler {}", env!("CARGO_PKG_VERSION"))
    );
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef k3s-autoscaler"),
        ("fish", "complete -c k3s-autoscaler"),
    ] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script:.200}");
        assert!(script.contains("metrics-addr"), "{shell} knows the flags");
    }
    let out = run(&["completions", "powershell-7"]);
    assert_eq!(out.status.code(), Some(2));
}

/// EC2 refuses user data over 16 KB; found at start-up (before any call to
/// a backend), it is an error of the config, naming the key: exit 2.
#[test]
fn user_data_over_16_kb_exits_2_naming_the_key() {
    let big = format!("#!/bin/sh\n{}", "# padding line\n".repeat(1200));
    assert!(big.len() > 16 * 1024);
    let template = config_file("big-user-data.sh.tmpl", &big);
    let path = config_file(
        "bigud.toml",
        &format!("[ec2]\nuser_data_template = \"{}\"\n", template.display()),
    );
    let out = run(&["--auto", "--once", "-c", path.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("ec2.user_data_template"), "{err}");
    assert!(err.contains("bigud.toml"), "names the config file: {err}");
    assert!(err.contains("at most 16384"), "{err}");
    assert!(out.stdout.is_empty(), "nothing runs: {err}");
}
