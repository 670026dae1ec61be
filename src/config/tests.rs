use super::*;
use std::time::Duration;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("test.toml"))
}

#[test]
fn empty_file_is_all_defaults() {
    let config = parse("").unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.policy.pending_for.get(), Duration::from_secs(60));
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
    assert!(parse("[policy]\ncpu_up_for = \"0s\"\n").is_ok());
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
