//! The crash-recovery tests need the `failpoints` feature
//! (`required-features` in Cargo.toml), and without it cargo leaves them
//! out without a word. Under the project's test command they must run: this
//! test, outside the gate, fails there when the feature is off.

/// Whether this build has the failpoints feature (a function, so that the
/// check below is a runtime one under both builds).
fn built_with_failpoints() -> bool {
    cfg!(feature = "failpoints")
}

#[test]
fn the_test_command_runs_with_failpoints() {
    let under_script = std::env::var_os("K3SA_TEST_SCRIPT").is_some();
    let with = built_with_failpoints();
    assert!(
        with || !under_script,
        "scripts/test.sh must run `cargo test --features failpoints`: \
         without it the crash-recovery tests do not run at all"
    );
    if !with {
        // A developer's plain `cargo test`: say what is left out.
        eprintln!(
            "note: tests/crash_recovery.rs is not built without --features failpoints \
             (scripts/test.sh runs it)"
        );
    }
}
