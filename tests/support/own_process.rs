//! A test that must own its process runs as a child of the test binary it
//! is in. Some tests set what is process-wide — the environment, a global
//! logger — and in a binary whose other tests run on other threads that is
//! unsound (the environment) or leaks into them (the logger's buffer shows
//! up in their screens). A binary per such test costs a link of the whole
//! SDK on two cores; re-running this binary with only that test selected
//! costs a process start.
//!
//! The child is `#[ignore]`d, so a normal run leaves it to its parent; its
//! body is [`as_child`], which does nothing outside a child started by
//! [`run_child`] and ends with a line the parent requires to see, so the
//! parent cannot pass on a child that was filtered out or returned early.

use std::future::Future;
use std::process::Command;

/// Set in the child's environment only.
const CHILD_MARKER: &str = "K3SA_TEST_OWN_PROCESS";
/// The child's last line on stderr when all its checks passed.
const DONE: &str = "own-process test: every check ran";

/// Whether this process is a child started by [`run_child`]; when not
/// (`cargo test -- --ignored`), says why the child does nothing.
fn is_child() -> bool {
    let child = std::env::var_os(CHILD_MARKER).is_some();
    if !child {
        eprintln!("skipped: run by its parent test in a process of its own");
    }
    child
}

/// A child test's body: in a child started by [`run_child`], run `checks`
/// on a runtime of its own and say they all ran; elsewhere, nothing.
pub fn as_child<F: Future<Output = ()>>(checks: impl FnOnce() -> F) {
    if !is_child() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the child's checks");
    runtime.block_on(checks());
    eprintln!("{DONE}");
}

/// Run the test `module_path::test` (pass `module_path!()`) alone in a new
/// process of this test binary, with `env` added to its environment, and
/// fail unless it ran all its checks and passed.
pub fn run_child(module_path: &str, test: &str, env: &[(&str, &str)]) {
    // libtest names a test by its path without the crate's name.
    let module = module_path.split_once("::").map_or("", |(_, rest)| rest);
    let name = format!("{module}::{test}");
    let exe = std::env::current_exe().expect("the test binary's own path");
    let out = Command::new(exe)
        .args([name.as_str(), "--exact", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(CHILD_MARKER, "1")
        .envs(env.iter().copied())
        .output()
        .expect("the test binary runs again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed in its own process:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed") && stderr.contains(DONE),
        "{name} did not run its checks in its own process:\n{stdout}\n{stderr}"
    );
}
