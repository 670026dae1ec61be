//! `Clock`: wall and monotonic time, and sleeping, behind a trait so the
//! simulator and tests control time.

use super::time::{MonoTime, Timestamp};
use async_trait::async_trait;
use std::time::Duration;

#[async_trait]
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
    fn mono(&self) -> MonoTime;
    async fn sleep(&self, duration: Duration);
}
