//! A per-engine wall clock that is off by a fixed amount (within the
//! configured skew margin), over the run's shared simulated time.

use crate::ports::{Clock, MonoTime, Timestamp};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

pub struct SkewedClock {
    pub base: Arc<dyn Clock>,
    pub skew_ms: i64,
}

#[async_trait]
impl Clock for SkewedClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.base.now().0 + self.skew_ms)
    }

    fn mono(&self) -> MonoTime {
        self.base.mono()
    }

    async fn sleep(&self, d: Duration) {
        self.base.sleep(d).await;
    }
}
