//! `SystemClock`: the `Clock` port on the machine's clocks. It is the one
//! clock that reads the time, so it lives with the other adapters, outside
//! the core crate that holds the trait (which has no IO to do).

use crate::ports::{Clock, MonoTime, Timestamp};
use async_trait::async_trait;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The machine's clocks.
///
/// The monotonic clock is `CLOCK_BOOTTIME` on Linux: unlike
/// `CLOCK_MONOTONIC` (Rust's `Instant`), it keeps counting while the host
/// is suspended, so a laptop that slept through its lease wakes up past the
/// deadline instead of believing it still holds the lock.
pub struct SystemClock {
    origin: Instant,
    boot_origin: Option<u64>,
}

impl SystemClock {
    pub fn new() -> Self {
        SystemClock {
            origin: Instant::now(),
            boot_origin: boottime_ms(),
        }
    }
}

/// Milliseconds of `CLOCK_BOOTTIME`, where there is one.
#[cfg(target_os = "linux")]
fn boottime_ms() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec that outlives the call;
    // clock_gettime only writes into it and reports failure by its result.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    (rc == 0 && ts.tv_sec >= 0)
        .then(|| ts.tv_sec as u64 * 1000 + (ts.tv_nsec.max(0) as u64) / 1_000_000)
}

#[cfg(not(target_os = "linux"))]
fn boottime_ms() -> Option<u64> {
    None
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            // A clock before 1970 is a broken host; 0 makes leases look expired, the safe side.
            .unwrap_or(0);
        Timestamp(ms)
    }

    fn mono(&self) -> MonoTime {
        match (self.boot_origin, boottime_ms()) {
            (Some(origin), Some(now)) => MonoTime(now.saturating_sub(origin)),
            _ => MonoTime(self.origin.elapsed().as_millis() as u64),
        }
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monotonic_clock_counts_from_start_and_never_goes_back() {
        let clock = SystemClock::new();
        let a = clock.mono();
        std::thread::sleep(Duration::from_millis(20));
        let b = clock.mono();
        assert!(b >= a.plus(Duration::from_millis(15)), "{a:?} → {b:?}");
        assert!(a.0 < 1_000, "it starts near zero: {a:?}");
        #[cfg(target_os = "linux")]
        assert!(boottime_ms().is_some(), "CLOCK_BOOTTIME is read on Linux");
    }
}
