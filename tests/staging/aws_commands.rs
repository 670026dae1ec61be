//! `init` (twice), `status --json` and `unlock --force` through the real
//! binary: the state table on DynamoDB Local, EC2 on moto, reached as on a
//! real deployment through the SDK's per-service endpoint variables (the
//! config has no `[aws] endpoint_url`).

use crate::support;

use std::io::Write;
use std::process::{Command, Output};

use crate::support::stack::BIN;

fn config_file(cluster: &str, table: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(support::unique("k3sa-aws-cmd"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("k3s.toml");
    let text = format!(
        "[cluster]\nname = \"{cluster}\"\n\n[aws]\nregion = \"us-east-1\"\n\n[dynamodb]\ntable = \"{table}\"\n\n[ec2]\nami = \"ami-1e749f67\"\n"
    );
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path
}

fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL");
    for (k, v) in support::MOTO_ENV {
        cmd.env(k, v);
    }
    for (k, v) in support::aws_endpoint_env() {
        cmd.env(k, v);
    }
    cmd
}

fn run(args: &[&str]) -> Output {
    command(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn init_twice_status_json_and_break_glass_unlock() {
    let cluster = support::unique("cmd");
    let table = support::unique("cmd-table");
    let config = config_file(&cluster, &table);
    let c = config.to_str().unwrap();

    // Before init, status cannot read the table: exit 1, and says why.
    let out = run(&["status", "-c", c]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("could not be read"), "{}", text(&out));
    assert!(
        text(&out).contains("k3s-autoscaler init"),
        "says what to do: {}",
        text(&out)
    );

    let out = run(&["init", "-c", c]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("created table"), "{}", text(&out));
    let out = run(&["init", "-c", c]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("exists"), "{}", text(&out));

    let out = run(&["status", "--json", "-c", c]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["cluster"], cluster.as_str());
    assert_eq!(status["backends"]["dynamodb"]["ok"], true);
    assert_eq!(status["backends"]["ec2"]["ok"], true);
    assert_eq!(status["lock"]["held"], false);
    assert_eq!(status["lock"]["fence"], 0);
    assert_eq!(status["workers"], serde_json::json!([]));

    // Without --force: refused, nothing changes.
    let out = run(&["unlock", "-c", c]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--force"));

    let out = run(&[
        "unlock",
        "--force",
        "--reason",
        "stuck after a host died",
        "-c",
        c,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("break-glass unlock"),
        "the audit line: {said}"
    );
    assert!(said.contains("stuck after a host died"), "{said}");
    assert!(said.contains("fence is now 1"), "{said}");

    let out = run(&["status", "--json", "-c", c]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["lock"]["fence"], 1, "the fence was bumped");
    assert!(
        status["lock"]["owner"]
            .as_str()
            .unwrap()
            .starts_with("break-glass:")
    );
}

#[test]
fn status_reports_an_unreachable_ec2_and_still_exits_0() {
    let cluster = support::unique("cmd-ec2");
    let table = support::unique("cmd-ec2-table");
    let config = config_file(&cluster, &table);
    let c = config.to_str().unwrap();
    assert_eq!(run(&["init", "-c", c]).status.code(), Some(0));
    // EC2 pointed at a closed port on loopback; DynamoDB stays where it is.
    let mut cmd = command(&["status", "--json", "-c", c]);
    cmd.env("AWS_ENDPOINT_URL_EC2", "http://127.0.0.1:9");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        status["backends"]["dynamodb"]["ok"], true,
        "per-service endpoint variables work"
    );
    assert_eq!(status["backends"]["ec2"]["ok"], false);
    assert!(status["workers"].is_null());
}

#[test]
fn with_no_credentials_at_all_check_and_status_say_so() {
    let cluster = support::unique("cmd-nocreds");
    let table = support::unique("cmd-nocreds-table");
    let config = config_file(&cluster, &table);
    let c = config.to_str().unwrap();
    let home = std::env::temp_dir().join(support::unique("k3sa-empty-home"));
    std::fs::create_dir_all(&home).unwrap();
    for args in [&["check", "-c", c][..], &["status", "-c", c]] {
        let mut cmd = command(args);
        for var in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        ] {
            cmd.env_remove(var);
        }
        // No profile files either, and never the instance-metadata address.
        cmd.env("HOME", &home)
            .env("AWS_CONFIG_FILE", home.join("no-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", home.join("no-credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true");
        let out = cmd.output().unwrap();
        let said = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {said}");
        assert!(
            said.contains("no AWS credentials found (environment, profile, instance role)"),
            "{args:?}: {said}"
        );
        assert!(!said.contains("IMDS"), "{args:?}: {said}");
    }
}
