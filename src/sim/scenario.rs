//! Workload scenarios: the demand (in CPU millicores) on the application
//! over time. Replica counts, CPU and unschedulable pods all follow from it.

use super::rng::signed_noise;
use crate::ports::Timestamp;
use std::fmt;
use std::str::FromStr;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ScenarioKind {
    /// 09:00–21:00 a load that puts a static 5-worker fleet at 70–80 % CPU
    /// and leaves pods unschedulable; 21:00–09:00 20–30 % of 5 workers.
    Diurnal,
    /// Steady, then a 3× spike for 20 minutes (every two hours).
    FlashSale,
    /// Diurnal plus a daily 20-minute flash sale at a seeded daytime hour.
    DiurnalFlash,
    /// A constant moderate load.
    Steady,
    /// Almost nothing.
    Idle,
}

pub const SCENARIO_NAMES: [&str; 5] = ["diurnal", "flash-sale", "diurnal-flash", "steady", "idle"];

impl FromStr for ScenarioKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "diurnal" => Ok(ScenarioKind::Diurnal),
            "flash-sale" => Ok(ScenarioKind::FlashSale),
            "diurnal-flash" => Ok(ScenarioKind::DiurnalFlash),
            "steady" => Ok(ScenarioKind::Steady),
            "idle" => Ok(ScenarioKind::Idle),
            other => Err(format!(
                "unknown scenario \"{other}\" (choose one of: {})",
                SCENARIO_NAMES.join(", ")
            )),
        }
    }
}

impl fmt::Display for ScenarioKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScenarioKind::Diurnal => "diurnal",
            ScenarioKind::FlashSale => "flash-sale",
            ScenarioKind::DiurnalFlash => "diurnal-flash",
            ScenarioKind::Steady => "steady",
            ScenarioKind::Idle => "idle",
        })
    }
}

/// Demand of the web application, calibrated against the simulated worker
/// (2 vCPU, 6 web pods of 300m each): see `sim::world` for the fleet.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub kind: ScenarioKind,
    seed: u64,
    /// Multiplies every demand: `--workers N` scales the cluster with it.
    pub scale: f64,
    pub start: Timestamp,
    /// The workload's own clock runs this many times faster than the
    /// world's (the staging façade reports real time but compresses the day).
    pub warp: f64,
}

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
const MIN_MS: i64 = 60_000;

/// Daytime demand: ~75 % CPU on five workers with pods left pending.
const DAY_LOAD: f64 = 6_900.0;
/// Night demand: ~25 % CPU on five workers.
const NIGHT_LOAD: f64 = 1_900.0;
/// Flash-sale steady demand: ~45 % CPU on five workers.
const STEADY_LOAD: f64 = 4_000.0;
const RAMP_MS: i64 = 30 * MIN_MS;
/// The daily sale of `diurnal-flash` adds 60 % to the daytime load: as much
/// as `max_workers` (10) can hold, so the sale measures the policy rather
/// than the cap.
const DAILY_SALE_EXTRA: f64 = 0.6;
const SPIKE_MS: i64 = 20 * MIN_MS;

impl Scenario {
    pub fn new(kind: ScenarioKind, seed: u64, scale: f64, start: Timestamp) -> Self {
        Scenario {
            kind,
            seed,
            scale,
            start,
            warp: 1.0,
        }
    }

    /// Demand in millicores at world time `t`.
    pub fn demand(&self, t: Timestamp) -> f64 {
        let t = if self.warp == 1.0 {
            t
        } else {
            Timestamp(self.start.0 + ((t.0 - self.start.0) as f64 * self.warp) as i64)
        };
        let base = match self.kind {
            ScenarioKind::Diurnal => diurnal(t),
            ScenarioKind::DiurnalFlash => {
                diurnal(t) * (1.0 + DAILY_SALE_EXTRA * self.daily_spike(t))
            }
            ScenarioKind::FlashSale => STEADY_LOAD * (1.0 + 2.0 * self.flash_spike(t)),
            ScenarioKind::Steady => STEADY_LOAD,
            ScenarioKind::Idle => 300.0,
        };
        (base * (1.0 + 0.04 * self.noise(t)) * self.scale).max(0.0)
    }

    /// Smooth noise in [-1, 1]: value noise on 5-minute knots.
    fn noise(&self, t: Timestamp) -> f64 {
        let knot_ms = 5 * MIN_MS;
        let k = t.0.div_euclid(knot_ms);
        let frac = t.0.rem_euclid(knot_ms) as f64 / knot_ms as f64;
        let a = signed_noise(self.seed, k);
        let b = signed_noise(self.seed, k + 1);
        a + (b - a) * frac
    }

    /// The flash-sale spike: 0 outside, ramping to 1 inside a 20-minute
    /// window that starts 5–7 minutes after the start and repeats every 2 h.
    fn flash_spike(&self, t: Timestamp) -> f64 {
        let offset = 5 * MIN_MS + (signed_noise(self.seed, -1).abs() * 2.0 * MIN_MS as f64) as i64;
        let period = 2 * HOUR_MS;
        let into = (t.0 - self.start.0 - offset).rem_euclid(period);
        if t.0 - self.start.0 < offset {
            return 0.0;
        }
        window(into, SPIKE_MS)
    }

    /// A 20-minute sale once a day at a seeded time between 10:00 and 19:00.
    fn daily_spike(&self, t: Timestamp) -> f64 {
        let day = t.0.div_euclid(DAY_MS);
        let at =
            10 * HOUR_MS + ((signed_noise(self.seed, day).abs()) * 9.0 * HOUR_MS as f64) as i64;
        window(t.0.rem_euclid(DAY_MS) - at, SPIKE_MS)
    }
}

/// 1 inside [0, len) with one-minute ramps at each edge, 0 outside.
fn window(into: i64, len: i64) -> f64 {
    if into < 0 || into >= len {
        return 0.0;
    }
    let ramp = MIN_MS as f64;
    let up = into as f64 / ramp;
    let down = (len - into) as f64 / ramp;
    up.min(down).min(1.0)
}

/// Night load until 08:30, a 30-minute ramp to the day load at 09:00,
/// and back down from 20:30 to 21:00.
fn diurnal(t: Timestamp) -> f64 {
    let ms = t.0.rem_euclid(DAY_MS);
    let up_start = 9 * HOUR_MS - RAMP_MS;
    let down_start = 21 * HOUR_MS - RAMP_MS;
    let day_share = if ms < up_start {
        0.0
    } else if ms < 9 * HOUR_MS {
        (ms - up_start) as f64 / RAMP_MS as f64
    } else if ms < down_start {
        1.0
    } else if ms < 21 * HOUR_MS {
        1.0 - (ms - down_start) as f64 / RAMP_MS as f64
    } else {
        0.0
    };
    NIGHT_LOAD + (DAY_LOAD - NIGHT_LOAD) * day_share
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: i64, m: i64) -> Timestamp {
        Timestamp(h * HOUR_MS + m * MIN_MS)
    }

    #[test]
    fn diurnal_has_day_and_night() {
        let s = Scenario::new(ScenarioKind::Diurnal, 1, 1.0, Timestamp(0));
        assert!(s.demand(at(3, 0)) < 2_100.0);
        assert!(s.demand(at(14, 0)) > 6_500.0);
        assert!(s.demand(at(22, 0)) < 2_100.0);
    }

    #[test]
    fn flash_sale_spikes_three_times_soon_after_start() {
        let s = Scenario::new(ScenarioKind::FlashSale, 3, 1.0, Timestamp(0));
        assert!(s.demand(at(0, 2)) < 4_400.0);
        let peak = (0..40).map(|m| s.demand(at(0, m))).fold(0.0, f64::max);
        assert!(peak > 11_000.0, "peak {peak}");
        assert!(s.demand(at(0, 40)) < 4_400.0);
    }

    #[test]
    fn names_round_trip() {
        for name in SCENARIO_NAMES {
            let kind: ScenarioKind = name.parse().unwrap();
            assert_eq!(kind.to_string(), name);
        }
        assert!("nope".parse::<ScenarioKind>().is_err());
    }
}

#[cfg(test)]
mod warp_tests {
    use super::*;

    #[test]
    fn warp_compresses_the_timeline() {
        let start = Timestamp(1_000_000_000_000);
        let mut s = Scenario::new(ScenarioKind::FlashSale, 1, 0.6, start);
        s.warp = 20.0;
        let peak = (0..120)
            .map(|sec| s.demand(Timestamp(start.0 + sec * 1000)))
            .fold(0.0, f64::max);
        assert!(peak > 6_000.0, "peak {peak}");
    }
}
