//! Failpoints for the crash-recovery tests: with the `failpoints` feature,
//! `K3SA_FAILPOINT=<name>` makes the process stop dead at that point (it
//! announces it on stderr and waits to be `kill -9`ed). Without the feature
//! this compiles to nothing: a production binary has no such hook.

/// The step boundaries of the operations (docs/architecture.md §3) that the
/// crash-recovery tests stop at (listed in the README's Reliability section).
pub const AFTER_INTENT: &str = "after-intent";
pub const AFTER_LAUNCH: &str = "after-launch";
pub const MID_DRAIN: &str = "mid-drain";
pub const AFTER_TERMINATE: &str = "after-terminate";

/// Set by `Shutdown::request`: what `K3SA_SIGTERM_AT` waits for.
#[cfg(feature = "failpoints")]
pub static SHUTDOWN_REQUESTED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    // K3SA_SIGTERM_AT=<name>: deliver SIGTERM to ourselves right here, to
    // test graceful shutdown in that exact phase.
    if std::env::var("K3SA_SIGTERM_AT").is_ok_and(|v| v == name) {
        use std::io::Write;
        // The test measures SIGTERM -> exit from this line.
        let _ = writeln!(std::io::stderr(), "failpoint {name}: sending SIGTERM");
        let _ = std::io::stderr().flush();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status();
        // Hold this step until the signal task has set the shutdown flag
        // (it runs on the runtime's other worker), so the test sees the
        // phase of this exact point however loaded the machine is. A
        // fixed sleep here was a race on a busy two-core machine.
        let waited = std::time::Instant::now();
        while !SHUTDOWN_REQUESTED.load(std::sync::atomic::Ordering::SeqCst) {
            if waited.elapsed() > std::time::Duration::from_secs(30) {
                // Going on would look like a wrong phase to the test; say
                // what went wrong instead, and stop here.
                let _ = writeln!(
                    std::io::stderr(),
                    "failpoint {name}: SIGTERM sent, but no shutdown was requested within 30 s; aborting"
                );
                std::process::abort();
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    if std::env::var("K3SA_FAILPOINT").is_ok_and(|v| v == name) {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "failpoint {name} reached: waiting to be killed"
        );
        let _ = std::io::stderr().flush();
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}
