//! `assets/k3s-autoscaler.service`: hardened, restarts on
//! failure, gives the graceful stop more time than it can take, runs
//! flags the binary accepts, and passes `systemd-analyze verify` where
//! systemd is installed.

use k3s_autoscaler::config::Config;
use std::process::Command;

use crate::support::stack::BIN;

fn unit() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/k3s-autoscaler.service"
    ))
    .unwrap()
}

fn value<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn the_unit_is_hardened_and_outlasts_the_graceful_stop() {
    let unit = unit();
    for (key, expected) in [
        ("Restart", "on-failure"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("KillSignal", "SIGTERM"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(value(&unit, key), [expected], "{key}");
    }
    // The engine's graceful stop finishes one step, and no step acts past
    // the lease; systemd must not SIGKILL before that.
    let stop = value(&unit, "TimeoutStopSec")[0];
    let stop: u64 = stop.trim_end_matches('s').parse().unwrap();
    let lease = Config::default().lock.lease.get().as_secs();
    assert!(
        stop >= 2 * lease,
        "TimeoutStopSec {stop}s vs lease {lease}s"
    );
}

#[test]
fn the_unit_runs_flags_the_binary_accepts() {
    let unit = unit();
    let exec = value(&unit, "ExecStart")[0];
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/k3s-autoscaler"));
    let args: Vec<&str> = words.collect();
    assert!(args.contains(&"--auto") && args.contains(&"json"), "{exec}");
    // The flags parse; only the (absent) configuration file is missing.
    let out = Command::new(BIN).args(&args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("/etc/k3s-autoscaler/config.toml"), "{err}");
    assert!(!err.contains("unexpected argument"), "{err}");
}

#[test]
fn systemd_analyze_verify_finds_nothing_to_say() {
    // A missing peer fails, with the line that installs it: a test that
    // skips itself silently proves nothing (scripts/peers.sh installs it).
    let probe = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "systemd-analyze is not available ({e}); install it with: \
                 apt-get install -y --no-install-recommends systemd"
            )
        });
    assert!(probe.status.success());
    // verify checks that ExecStart exists: point it at the built binary.
    let dir = std::env::temp_dir().join(format!("k3sa-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("k3s-autoscaler.service");
    std::fs::write(&path, unit().replace("/usr/local/bin/k3s-autoscaler", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 on unknown keys and bad values; its warnings say so.
    assert!(out.status.success() && err.trim().is_empty(), "{err}");
    // And it does say so: a misspelt key is reported.
    std::fs::write(
        &path,
        unit()
            .replace("/usr/local/bin/k3s-autoscaler", BIN)
            .replace("NoNewPrivileges=", "NoNewPrivilege="),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NoNewPrivilege"),
        "the negative control is reported"
    );
    let _ = std::fs::remove_dir_all(dir);
}
