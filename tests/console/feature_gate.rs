//! The crash-recovery tests need the `failpoints` feature (a `cfg` on
//! their module in `tests/staging/main.rs`), the chaos and hostile-input
//! tests the `harness` feature (the `harness` test binary's
//! `required-features` in Cargo.toml), and without them cargo leaves those
//! tests out without a word. Under the project's test command they must run: this test,
//! outside the gates, fails there when a feature is off.

/// Whether this build has the failpoints feature (a function, so that the
/// check below is a runtime one under both builds).
fn built_with_failpoints() -> bool {
    cfg!(feature = "failpoints")
}

fn built_with_harness() -> bool {
    cfg!(feature = "harness")
}

#[test]
fn the_test_command_runs_with_the_harness() {
    let under_script = std::env::var_os("K3SA_TEST_SCRIPT").is_some();
    assert!(
        built_with_harness() || !under_script,
        "scripts/test.sh must run `cargo test --workspace --features failpoints,harness`: \
         without it the chaos and hostile-input tests do not run at all"
    );
    if !built_with_harness() {
        eprintln!(
            "note: the harness test binary (tests/harness/: chaos, hostile input) is not \
             built without --features harness (scripts/test.sh runs it)"
        );
    }
}

#[test]
fn the_test_command_runs_with_failpoints() {
    let under_script = std::env::var_os("K3SA_TEST_SCRIPT").is_some();
    let with = built_with_failpoints();
    assert!(
        with || !under_script,
        "scripts/test.sh must run `cargo test --workspace --features failpoints,harness`: \
         without it the crash-recovery tests do not run at all"
    );
    if !with {
        // A developer's plain `cargo test`: say what is left out.
        eprintln!(
            "note: tests/staging/crash_recovery.rs is not compiled without --features \
             failpoints (scripts/test.sh runs it)"
        );
    }
}
