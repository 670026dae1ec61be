//! Simulated time: either running X times faster than the wall clock (the
//! console and `--speed X`) or advanced only by sleeping (`--speed max`,
//! tests), so a simulated day takes as long as the CPU needs.

use crate::ports::{Clock, MonoTime, Timestamp};
use async_trait::async_trait;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct SimClock {
    start: Timestamp,
    mode: Mode,
}

enum Mode {
    /// Time moves only when someone sleeps.
    Manual { elapsed_ms: AtomicU64 },
    /// Time moves `speed` times faster than the machine's clock.
    Scaled { origin: Instant, speed: f64 },
}

impl SimClock {
    pub fn manual(start: Timestamp) -> Self {
        SimClock {
            start,
            mode: Mode::Manual {
                elapsed_ms: AtomicU64::new(0),
            },
        }
    }

    pub fn scaled(start: Timestamp, speed: f64) -> Self {
        SimClock {
            start,
            mode: Mode::Scaled {
                origin: Instant::now(),
                speed: speed.max(f64::MIN_POSITIVE),
            },
        }
    }

    pub fn is_manual(&self) -> bool {
        matches!(self.mode, Mode::Manual { .. })
    }

    fn elapsed_ms(&self) -> u64 {
        match &self.mode {
            Mode::Manual { elapsed_ms } => elapsed_ms.load(Ordering::SeqCst),
            Mode::Scaled { origin, speed } => {
                (origin.elapsed().as_secs_f64() * speed * 1000.0) as u64
            }
        }
    }

    /// Move manual time forward (no-op for scaled time).
    pub fn advance(&self, d: Duration) {
        if let Mode::Manual { elapsed_ms } = &self.mode {
            elapsed_ms.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
        }
    }
}

#[async_trait]
impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.start.0 + self.elapsed_ms() as i64)
    }

    fn mono(&self) -> MonoTime {
        MonoTime(self.elapsed_ms())
    }

    async fn sleep(&self, duration: Duration) {
        match &self.mode {
            Mode::Manual { .. } => {
                self.advance(duration);
                tokio::task::yield_now().await;
            }
            Mode::Scaled { speed, .. } => {
                tokio::time::sleep(duration.div_f64(*speed)).await;
            }
        }
    }
}
