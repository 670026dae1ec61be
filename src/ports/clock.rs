//! `Clock`: wall and monotonic time, and sleeping, behind a trait so the
//! simulator and tests control time.

use super::time::{MonoTime, Timestamp};
use async_trait::async_trait;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[async_trait]
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
    fn mono(&self) -> MonoTime;
    async fn sleep(&self, duration: Duration);
}

/// The machine's clocks.
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
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
        MonoTime(self.origin.elapsed().as_millis() as u64)
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}
