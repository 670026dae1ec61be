//! Secrets and read-only as tests on the real path (the staging stack):
//! * canary credentials and a canary join token never appear in logs, the
//!   console's screen, the DynamoDB items or the rendered user data;
//! * read-only mode makes zero mutating requests, counted at DynamoDB Local
//!   and moto (through counting proxies) and at the Kubernetes façade.

use crate::support;

use crate::support::proxy::CountingProxy;
use crate::support::stack::Stack;
use std::process::Command;
use std::time::Duration;

const CANARIES: [(&str, &str); 6] = [
    ("AWS_ACCESS_KEY_ID", "AKIACANARY7Q2V9XK4ZP"),
    // The webhook URL is its own credential. Nothing listens on port 9 of
    // loopback, so every notice fails and its errors are logged: the
    // place a URL would leak.
    (
        "K3SA_WEBHOOK_URL",
        "http://127.0.0.1:9/hooks/canary-webhook-6d2e8b14",
    ),
    ("AWS_SECRET_ACCESS_KEY", "canary-secret-5f3a9e0c1d"),
    ("AWS_SESSION_TOKEN", "canary-session-77c1b2e4"),
    ("PROM_TOKEN", "canary-bearer-91d2aa03"),
    // An operator's shell might export the join token: the tool must not pick it up.
    ("K3S_TOKEN", "canary-join-token-4e8b61f0"),
];

fn busy_stack() -> Stack {
    Stack::up(&[
        ("STACK_SCENARIO", "steady"),
        ("STACK_SCALE", "1.0"),
        ("STACK_SPEED", "1"),
    ])
}

fn with_canaries(cmd: &mut Command) -> &mut Command {
    for (k, v) in CANARIES {
        cmd.env(k, v);
    }
    cmd
}

fn assert_clean(place: &str, text: &str) {
    for (name, value) in CANARIES {
        assert!(
            !text.contains(value),
            "the {name} canary leaked into {place}"
        );
    }
    // The webhook's secret part alone, wherever a URL is cut up.
    assert!(
        !text.contains("canary-webhook-6d2e8b14"),
        "the webhook URL's path leaked into {place}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_secrets_never_leak() {
    let stack = busy_stack();
    stack.add("prometheus", "bearer_token_env = \"PROM_TOKEN\"");
    stack.add("notify", "url_env = \"K3SA_WEBHOOK_URL\"\nattempts = 2");
    // --auto with the canaries in its environment, until it has launched.
    let mut engine = {
        let log = stack.dir.join("engine.log");
        let err = stack.dir.join("engine.err");
        let mut cmd = stack.command(&["--auto", "--log-format", "json"]);
        with_canaries(&mut cmd)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        support::stack::Engine {
            child: cmd.spawn().unwrap(),
            log,
            err,
        }
    };
    engine.wait_for("a launch", Duration::from_secs(300), |s, _| {
        !s.launched.is_empty()
    });
    // The launch's notice failed against the canary webhook and its error
    // was logged: the place the URL would leak.
    let log_path = engine.log.clone();
    engine.wait_for("a notice given up", Duration::from_secs(180), |_, _| {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .contains("notice given up")
    });
    assert!(engine.terminate(false).success());
    let mut outputs = std::fs::read_to_string(&engine.log).unwrap();
    outputs += &std::fs::read_to_string(&engine.err).unwrap();
    for args in [&["status"][..], &["status", "--json"], &["check"]] {
        let out = with_canaries(&mut stack.command(args)).output().unwrap();
        outputs += &String::from_utf8_lossy(&out.stdout);
        outputs += &String::from_utf8_lossy(&out.stderr);
    }
    assert!(outputs.contains("launched"), "the run did launch");
    assert_clean("the logs and command output", &outputs);

    // The console's screen (read-only, under tmux).
    let socket = support::unique("k3sa-canary");
    let mut shell = format!(
        "{} -c {} --read-only",
        support::stack::BIN,
        stack.config.display()
    );
    for (k, v) in CANARIES.iter().chain(support::MOTO_ENV.iter().skip(2)) {
        shell = format!("{k}={v} {shell}");
    }
    for (k, v) in stack
        .env()
        .iter()
        .filter(|(k, _)| k.starts_with("AWS_ENDPOINT_URL"))
    {
        shell = format!("{k}={v} {shell}");
    }
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .arg("-L")
            .arg(&socket)
            .args(args)
            .output()
            .unwrap()
    };
    tmux(&[
        "new-session",
        "-d",
        "-s",
        "c",
        "-x",
        "160",
        "-y",
        "50",
        &shell,
    ]);
    // Wait for the event that matters, not a fixed time: the header's
    // "data … old" appears once the first observation (and with it the
    // engine's first log lines) has reached the console. Bounded, so a
    // console that never loads fails here with what it showed.
    let mut screen = String::new();
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        screen =
            String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", "c"]).stdout).to_string();
        if screen.contains("Workers") && screen.contains(" old") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        screen.contains(" old"),
        "no observation reached the console: {screen}"
    );
    screen += &String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-S", "-", "-t", "c"]).stdout);
    tmux(&["kill-server"]);
    assert!(screen.contains("Workers"), "{screen}");
    assert_clean("the console", &screen);

    // Every item of the state table, and the user data of every instance.
    let dynamo = aws_sdk_dynamodb::Client::new(&support::sdk_at(&stack.dynamodb_url()).await);
    let sdk = support::sdk_at(&stack.moto_url()).await;
    let items = dynamo
        .scan()
        .table_name("k3s-autoscaler-staging")
        .send()
        .await
        .unwrap();
    let dump = format!("{:?}", items.items());
    assert!(
        dump.contains("lock#staging") && dump.contains("op#staging"),
        "{dump}"
    );
    assert_clean("the DynamoDB items", &dump);
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let launched = support::stack::read_log(&engine.log).launched;
    assert!(!launched.is_empty());
    for id in launched {
        let attr = ec2
            .describe_instance_attribute()
            .instance_id(&id)
            .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
            .send()
            .await
            .unwrap();
        let encoded = attr.user_data().and_then(|u| u.value()).unwrap_or_default();
        let decoded = String::from_utf8(decode_base64(encoded)).unwrap();
        assert!(
            decoded.contains("/k3s/agent-token"),
            "user data names the parameter"
        );
        assert_clean(&format!("the user data of {id}"), &decoded);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_makes_zero_mutating_requests_at_moto_and_the_facade() {
    let stack = busy_stack();
    let ec2_proxy = CountingProxy::start(&stack.moto_url()).await;
    let store_proxy = CountingProxy::start(&stack.dynamodb_url()).await;
    stack.set_env("AWS_ENDPOINT_URL_EC2", &ec2_proxy.url);
    stack.set_env("AWS_ENDPOINT_URL_DYNAMODB", &store_proxy.url);
    let facade = std::fs::read_to_string(stack.dir.join("sim.url")).unwrap();
    let facade_mutations = || async {
        reqwest::get(format!("{facade}/debug/mutations"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert_eq!(facade_mutations().await, "0");

    let mut engine = {
        let log = stack.dir.join("ro.log");
        let err = stack.dir.join("ro.err");
        let mut cmd = stack.command(&["--auto", "--read-only", "--log-format", "json"]);
        cmd.stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        support::stack::Engine {
            child: cmd.spawn().unwrap(),
            log,
            err,
        }
    };
    // The busy cluster calls for a scale-up: read-only only says so.
    engine.wait_for(
        "a 'would scale-up' decision",
        Duration::from_secs(90),
        |_, _| {
            std::fs::read_to_string(stack.dir.join("ro.log"))
                .unwrap_or_default()
                .contains("decision: would scale-up")
        },
    );
    std::thread::sleep(Duration::from_secs(6));
    assert!(engine.terminate(false).success());
    for args in [&["status", "--json"][..], &["check"]] {
        stack.command(args).output().unwrap();
    }

    for (name, proxy) in [("EC2", &ec2_proxy), ("DynamoDB", &store_proxy)] {
        assert!(
            proxy.total() > 5,
            "the {name} proxy saw the run's reads ({})",
            proxy.total()
        );
        assert_eq!(
            proxy.mutating(),
            Vec::<String>::new(),
            "mutating {name} requests in read-only mode"
        );
        assert_eq!(proxy.violations(), Vec::<String>::new());
    }
    assert_eq!(
        facade_mutations().await,
        "0",
        "mutating Kubernetes requests in read-only mode"
    );
    let status = stack.status();
    assert_eq!(status["lock"]["fence"], 0, "the lock was never taken");
    println!(
        "read-only: {} EC2 and {} DynamoDB requests, 0 mutating; 0 mutating Kubernetes requests",
        ec2_proxy.total(),
        store_proxy.total()
    );
}

fn decode_base64(text: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut bits, mut n, mut out) = (0u32, 0, Vec::new());
    for c in text.bytes().filter(|c| *c != b'=') {
        bits = (bits << 6) | alphabet.iter().position(|a| *a == c).unwrap() as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    out
}
