use super::*;
use std::time::Duration;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("test.toml"))
}

#[test]
fn empty_file_is_all_defaults() {
    let config = parse("").unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.policy.pending_for.get(), Duration::from_secs(5));
    assert_eq!(config.policy.max_workers, 10);
}

#[test]
fn example_file_documents_exactly_the_defaults() {
    let text = include_str!("../../config.example.toml");
    let config = parse(text).expect("config.example.toml must parse");
    assert_eq!(
        config,
        Config::default(),
        "config.example.toml drifted from the defaults"
    );
}

#[test]
fn syntax_error_names_the_line() {
    let err = parse("[policy]\nmin_workers = 2\nmax_workers = = 3\n").unwrap_err();
    assert_eq!(err.line, Some(3), "{err}");
    assert!(err.to_string().contains("test.toml"), "{err}");
}

#[test]
fn wrong_type_names_key_and_line() {
    let err = parse("[cluster]\nname = \"x\"\n[policy]\nmin_workers = \"two\"\n").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("policy.min_workers"), "{err}");
    assert_eq!(err.line, Some(4), "{err}");
}

#[test]
fn unknown_key_is_refused_with_its_name() {
    let err = parse("[policy]\nmin_workers = 2\ncpu_up_precent = 80\n").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("policy.cpu_up_precent"), "{err}");
    assert_eq!(err.line, Some(3), "{err}");
    let err = parse("[polcy]\n").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("polcy"), "{err}");
}

#[test]
fn contradictions_name_the_key() {
    let err = parse("[policy]\nmin_workers = 5\nmax_workers = 3\n").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("policy.min_workers"), "{err}");
    assert_eq!(err.line, Some(2), "{err}");

    let err = parse("[policy]\ncpu_up_percent = 50\ncpu_down_percent = 50\n").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("policy.cpu_down_percent"), "{err}");
    assert_eq!(err.line, Some(3), "{err}");

    // No time left for a side effect inside such a lease.
    let err = parse("[lock]\nlease = \"24s\"\nskew_margin = \"4s\"\n").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("lock.lease"), "{err}");
    assert_eq!(err.line, Some(2), "{err}");
    assert!(err.to_string().contains("skew_margin + 20s"), "{err}");
    parse("[lock]\nlease = \"25s\"\nskew_margin = \"4s\"\n").unwrap();
}

#[test]
fn zero_and_negative_durations_are_refused() {
    let err = parse("[drain]\ntimeout = \"0s\"\n").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("drain.timeout"), "{err}");
    assert_eq!(err.line, Some(2));
    let err = parse("[engine]\n\ninterval = \"-15s\"\n").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("engine.interval"), "{err}");
    assert_eq!(err.line, Some(3));
    assert!(err.message.contains("negative"), "{err}");
    // cpu_up_for is the one duration that may be zero: "immediately".
    let zero = parse("[policy]\ncpu_up_for = \"0s\"\n").expect("0s is legal here");
    assert_eq!(zero.policy.cpu_up_for.get(), std::time::Duration::ZERO);
}

#[test]
fn durations_parse_from_strings() {
    let config = parse("[policy]\nidle_for = \"1h30m\"\n[lock]\nlease = \"90s\"\n").unwrap();
    assert_eq!(config.policy.idle_for.get(), Duration::from_secs(5400));
    assert_eq!(config.lock.lease.get(), Duration::from_secs(90));
}

#[test]
fn missing_file_is_an_error_not_a_panic() {
    let err = Config::load(Path::new("/nonexistent/k3s.toml")).unwrap_err();
    assert!(err.message.contains("cannot read"), "{err}");
    assert!(err.to_string().contains("/nonexistent/k3s.toml"));
}

#[test]
fn tags_ec2_would_refuse_are_refused_at_load_with_the_limit() {
    use super::ec2_limits::{TAG_KEY_MAX_CHARS, TAG_VALUE_MAX_CHARS};
    let with = |tags: &str| parse(&format!("[ec2.tags]\n{tags}\n"));
    // At the limits, in characters (not bytes): accepted.
    let at = format!(
        "\"{}\" = \"{}\"",
        "é".repeat(TAG_KEY_MAX_CHARS),
        "ü".repeat(TAG_VALUE_MAX_CHARS)
    );
    with(&at).expect("at the limits");
    // The operator's Name is theirs to set.
    assert_eq!(
        with("Name = \"shop-worker\"").unwrap().ec2.tags["Name"],
        "shop-worker"
    );
    for (tags, why) in [
        (format!("\"{}\" = \"v\"", "k".repeat(128)), "at most 127"),
        (format!("team = \"{}\"", "v".repeat(257)), "at most 256"),
        ("\"AWS:owner\" = \"me\"".to_string(), "\"aws:\""),
        (
            "\"k3s-autoscaler/role\" = \"worker\"".to_string(),
            "set by k3s-autoscaler",
        ),
    ] {
        let err = with(&tags).unwrap_err();
        assert!(err.message.contains(why), "{tags}: {err}");
        assert!(
            err.key
                .as_deref()
                .is_some_and(|k| k.starts_with("ec2.tags.")),
            "{tags}: {err}"
        );
        assert_eq!(err.line, Some(2), "{tags}: {err}");
    }
    // 47 of the operator's and our 3 plus Name make 51 > 50.
    let many: Vec<String> = (0..47).map(|i| format!("t{i} = \"v\"")).collect();
    let err = with(&many.join("\n")).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("ec2.tags"), "{err}");
    assert!(err.message.contains("50"), "{err}");
    with(&many[..46].join("\n")).expect("46 fit");
    // The cluster name is a tag value on every worker.
    let err = parse(&format!("[cluster]\nname = \"{}\"\n", "c".repeat(257))).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("cluster.name"), "{err}");
}

#[test]
fn user_data_over_16_kb_is_refused() {
    use super::ec2_limits::{USER_DATA_MAX_BYTES, check_user_data};
    check_user_data(&"x".repeat(USER_DATA_MAX_BYTES)).expect("at the limit");
    let err = check_user_data(&"x".repeat(USER_DATA_MAX_BYTES + 1)).unwrap_err();
    assert!(err.contains("16384"), "{err}");
}

#[test]
fn a_worker_selector_the_api_server_would_refuse_is_refused_at_load() {
    for (text, why) in [
        ("worker_selector = \"\"", "must not be empty"),
        ("worker_selector = \"role in (worker\"", "unbalanced"),
        ("worker_selector = \"role=worker,\"", "empty term"),
    ] {
        let err = parse(&format!("[kubernetes]\n{text}\n")).unwrap_err();
        assert_eq!(
            err.key.as_deref(),
            Some("kubernetes.worker_selector"),
            "{err}"
        );
        assert_eq!(err.line, Some(2), "{err}");
        assert!(err.message.contains(why), "{text}: {err}");
    }
    // Set-based and negative terms are the API server's too: accepted.
    let ok = parse(
        "[kubernetes]\nworker_selector = \"role in (worker,spot),!k3s-autoscaler/excluded\"\n",
    )
    .expect("a set-based selector");
    assert!(ok.kubernetes.worker_selector.contains("in (worker,spot)"));
}

#[test]
fn a_table_name_dynamodb_would_refuse_is_refused_at_load() {
    for table in ["ab", "my table", "k3s/autoscaler", &"t".repeat(256)] {
        let err = parse(&format!("[dynamodb]\ntable = \"{table}\"\n")).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("dynamodb.table"), "{err}");
        assert_eq!(err.line, Some(2), "{err}");
        assert!(err.message.contains("3 to 255 characters"), "{err}");
    }
    let ok = parse("[dynamodb]\ntable = \"k3s-autoscaler.prod_1\"\n").expect("a legal name");
    assert_eq!(ok.dynamodb.table, "k3s-autoscaler.prod_1");
    parse("[dynamodb]\ntable = \"arn:aws:dynamodb:eu-west-1:123456789012:table/k3s\"\n")
        .expect("a table ARN");
}

#[test]
fn a_circuit_that_could_never_open_or_never_close_is_refused() {
    let err = parse("[circuit]\nnever_joined = 0\nfailed_operations = 0\n").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("circuit.never_joined"), "{err}");
    assert_eq!(err.line, Some(2), "{err}");
    assert!(err.to_string().contains("enabled = false"), "{err}");
    let err = parse("[circuit]\nwindow = \"0s\"\n").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("circuit.window"), "{err}");
    // Turned off, its counts do not matter.
    let off = parse("[circuit]\nenabled = false\nnever_joined = 0\nfailed_operations = 0\n");
    assert!(off.is_ok_and(|c| !c.circuit.enabled));
}

#[test]
fn a_webhook_url_pasted_into_the_file_is_refused_without_being_echoed() {
    let text = "[notify]\nurl_env = \"https://hooks.example.com/services/T0/B0/SECRETSECRET\"\n";
    let err = parse(text).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("notify.url_env"), "{err}");
    assert_eq!(err.line, Some(2), "{err}");
    assert!(!err.to_string().contains("SECRETSECRET"), "{err}");
    let err = parse("[notify]\nformat = \"teams\"\n").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("notify.format"), "{err}");
    assert!(parse("[notify]\nurl_env = \"K3SA_WEBHOOK_URL\"\n").is_ok());
}
