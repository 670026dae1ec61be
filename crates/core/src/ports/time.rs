//! Time as the engine sees it: wall-clock timestamps and a monotonic clock,
//! both plain numbers so that the engine can take `now` as an argument and the
//! simulator can run a day in a second.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Wall-clock time in milliseconds since the Unix epoch.
///
/// Wall time is what other machines see (lease expiry in DynamoDB, pod
/// timestamps); it can jump. Deadlines the process keeps for itself use
/// [`MonoTime`] instead.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    pub fn plus(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(duration_ms(d)))
    }

    pub fn minus(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_sub(duration_ms(d)))
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0).max(0) as u64)
    }

    /// `2026-01-05T09:30:00.000Z`: for logs and JSON.
    pub fn to_rfc3339(self) -> String {
        let days = self.0.div_euclid(86_400_000);
        let ms_of_day = self.0.rem_euclid(86_400_000);
        let (y, m, d) = civil_from_days(days);
        let (h, min, s) = self.time_of_day();
        format!(
            "{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{:03}Z",
            ms_of_day % 1000
        )
    }

    /// `2026-01-05T09:30:00.000000Z`: Kubernetes' `MicroTime`.
    pub fn to_rfc3339_micros(self) -> String {
        let millis = self.to_rfc3339();
        format!("{}000Z", millis.trim_end_matches('Z'))
    }

    /// Hours and minutes of the day in UTC, for scenarios and display.
    pub fn time_of_day(self) -> (u32, u32, u32) {
        let secs_of_day = self.0.div_euclid(1000).rem_euclid(86_400);
        (
            (secs_of_day / 3600) as u32,
            ((secs_of_day / 60) % 60) as u32,
            (secs_of_day % 60) as u32,
        )
    }
}

impl fmt::Display for Timestamp {
    /// `HH:MM:SS` in UTC: enough for logs and the console, which are about "now".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (h, m, s) = self.time_of_day();
        write!(f, "{h:02}:{m:02}:{s:02}")
    }
}

/// Monotonic time in milliseconds from an arbitrary origin of this process.
/// Lease deadlines are measured on it so a wall-clock jump cannot extend them.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MonoTime(pub u64);

impl MonoTime {
    pub fn plus(self, d: Duration) -> Self {
        MonoTime(self.0.saturating_add(duration_ms(d).max(0) as u64))
    }

    pub fn minus(self, d: Duration) -> Self {
        MonoTime(self.0.saturating_sub(duration_ms(d).max(0) as u64))
    }

    pub fn since(self, earlier: MonoTime) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Human form of a duration as operators write it: `3m`, `1h30m`, `4m12s`, `250ms`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, (total / 60) % 60, total % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_config_values() {
        assert_eq!(format_duration(Duration::from_secs(180)), "3m");
        assert_eq!(format_duration(Duration::from_secs(252)), "4m12s");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn since_never_goes_negative() {
        let a = Timestamp(10_000);
        assert_eq!(a.since(Timestamp(20_000)), Duration::ZERO);
        assert_eq!(Timestamp(20_000).since(a), Duration::from_secs(10));
        assert_eq!(Timestamp(3_723_000).to_string(), "01:02:03");
        assert_eq!(
            Timestamp(1_767_571_200_000).to_rfc3339(),
            "2026-01-05T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp(951_782_400_123).to_rfc3339(),
            "2000-02-29T00:00:00.123Z"
        );
    }
}
