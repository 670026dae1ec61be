//! Predictive pre-warm (`[policy.predictive]`, off by default): launch
//! ahead of a shortfall the cluster's own recent history says is coming,
//! by the time a launch takes to join.
//!
//! The signal is the workers the cluster needs each minute (`needed`):
//! what its pods request, packed onto workers like the largest there is,
//! or what brings CPU to the target, whichever is more. The method is a
//! seasonal naive forecast: the need one period from now is the need one
//! period ago. It is chosen because the loads it is for repeat (a sale
//! every two hours, a working day) and because it cannot invent a peak the
//! cluster has not had. The period is found, not configured: of 1 h to
//! 24 h, the one whose forecast would have had the smallest error over the
//! last day (the shortest of those within 10 % of the best, so a 2-hour
//! cycle is not called 4 hours). It is used only while that error is below
//! the error of assuming nothing changes over the lead time: where the load
//! does not repeat (a steady load, a sale at a new hour each day) there is
//! no forecast, and the engine is as reactive as without it.
//!
//! A forecast only ever adds: it may start a scale-up and hold a
//! scale-down, never shrink one, never go past `max_workers`. Pure: `now`
//! is an argument, the history (two days) lives in the caller's
//! `PolicyMemory`, and it starts empty in each process (a daily period is
//! found after a day and an hour).

use super::observation::ClusterView;
use super::settings::Settings;
use crate::ports::{Pod, Resources, Timestamp, format_duration};
use std::collections::VecDeque;
use std::time::Duration;

const MINUTE_MS: i64 = 60_000;
/// History kept, in minutes: the longest period and the day it is scored
/// over, and an hour for the lead and the clock's jitter.
const KEPT_MINUTES: i64 = 2 * 24 * 60 + 60;
/// The periods tried, in minutes.
const PERIODS: [i64; 8] = [60, 120, 180, 240, 360, 480, 720, 1440];
/// A period is scored over at most the last day...
const SCORED_MINUTES: i64 = 24 * 60;
/// ...and not used before it could be scored over an hour.
const MIN_SCORED: usize = 60;
/// The lead before any boot has been timed in this process.
pub const DEFAULT_LEAD: Duration = Duration::from_secs(180);

/// The need per minute, and how past forecasts fared.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DemandHistory {
    /// (minute, the most workers needed in it), oldest first; minutes
    /// the engine did not see (blind ticks, a restart) are missing.
    minutes: VecDeque<(i64, u32)>,
    /// Forecasts made, for minutes not yet past: (minute, workers).
    open: VecDeque<(i64, u32)>,
    abs_error: u64,
    scored: u64,
    /// The period chosen in the minute of the last forecast (it changes
    /// only with the history, which changes once a minute): (minute, lead
    /// in minutes, the choice).
    chosen: Option<(i64, i64, Option<Period>)>,
}

/// A period in minutes, its forecast's error over the last day, and the
/// error of "nothing changes over the lead".
type Period = (i64, f64, f64);

/// What the history says of the next lead.
#[derive(Clone, Debug, PartialEq)]
pub struct Forecast {
    /// The most workers needed from now to the end of the lead.
    pub workers: u32,
    /// When that need comes.
    pub at: Timestamp,
    /// The need per minute from now to the horizon.
    pub series: Vec<(Timestamp, u32)>,
    pub period: Duration,
    /// Mean |forecast − need| in workers over the day it was chosen on,
    /// and the same for "nothing changes over the lead".
    pub fit: f64,
    pub persistence: f64,
    /// Mean |forecast − need| of the forecasts this process made and saw
    /// come true or not, and how many.
    pub error_so_far: Option<(f64, u64)>,
}

impl Forecast {
    pub fn describe(&self, now: Timestamp) -> String {
        let error = match self.error_so_far {
            Some((mean, n)) => format!("error so far {mean:.2} workers over {n} forecasts"),
            None => "no forecast scored yet".to_string(),
        };
        let when = match self.at.since(now) {
            d if d.is_zero() => "now".to_string(),
            d => format!("in {}", format_duration(d)),
        };
        format!(
            "forecast: {} worker(s) needed {when} (seasonal, period {}: fit {:.2} vs {:.2} for no change; {error})",
            self.workers,
            format_duration(self.period),
            self.fit,
            self.persistence,
        )
    }
}

/// The reason line of a tick with the forecast on.
pub fn reason(forecast: Option<&Forecast>, needed: u32, now: Timestamp) -> String {
    match forecast {
        Some(f) => f.describe(now),
        None => format!(
            "forecast: none ({needed} worker(s) needed now; no repeating load in the history yet)"
        ),
    }
}

fn minute(t: Timestamp) -> i64 {
    t.0.div_euclid(MINUTE_MS)
}

impl DemandHistory {
    /// Remember this tick's need and score the forecasts whose minute has
    /// passed.
    pub fn record(&mut self, now: Timestamp, needed: u32) {
        let m = minute(now);
        match self.minutes.back_mut() {
            Some((last, v)) if *last == m => *v = (*v).max(needed),
            Some((last, _)) if *last > m => {} // a clock that went back
            _ => self.minutes.push_back((m, needed)),
        }
        while self
            .minutes
            .front()
            .is_some_and(|(first, _)| m - first >= KEPT_MINUTES)
        {
            self.minutes.pop_front();
        }
        while let Some(&(fm, f)) = self.open.front()
            && fm < m
        {
            self.open.pop_front();
            if let Some(actual) = self.at(fm) {
                self.abs_error += u64::from(f.abs_diff(actual));
                self.scored += 1;
            }
        }
    }

    fn at(&self, m: i64) -> Option<u32> {
        // Ticks every minute leave no holes: the minute's place is its
        // distance from the first (a search only where minutes are missing).
        let first = self.minutes.front()?.0;
        if let Ok(i) = usize::try_from(m - first)
            && let Some(&(x, v)) = self.minutes.get(i)
            && x == m
        {
            return Some(v);
        }
        let i = self.minutes.partition_point(|(x, _)| *x < m);
        self.minutes
            .get(i)
            .filter(|(x, _)| *x == m)
            .map(|(_, v)| *v)
    }

    /// Mean |need(m) − need(m − lag)| over the scored window, if it holds
    /// enough pairs.
    fn lag_error(&self, lag: i64) -> Option<f64> {
        let last = self.minutes.back()?.0;
        let from = last - SCORED_MINUTES;
        let start = self.minutes.partition_point(|(x, _)| *x <= from);
        let (mut sum, mut n) = (0u64, 0usize);
        for &(m, v) in self.minutes.range(start..) {
            if let Some(before) = self.at(m - lag) {
                sum += u64::from(v.abs_diff(before));
                n += 1;
            }
        }
        (n >= MIN_SCORED).then(|| sum as f64 / n as f64)
    }

    /// The need from now to `now + horizon`, one period ago (`workers`:
    /// its most up to `now + lead`): `None` while no period forecasts
    /// better than "nothing changes over the lead".
    pub fn forecast(
        &mut self,
        now: Timestamp,
        lead: Duration,
        horizon: Duration,
    ) -> Option<Forecast> {
        let minutes = |d: Duration| (d.as_millis() as i64 + MINUTE_MS - 1) / MINUTE_MS;
        let lead_minutes = minutes(lead);
        let now_m = minute(now);
        let chosen = match self.chosen {
            Some((m, l, chosen)) if m == now_m && l == lead_minutes => chosen,
            _ => {
                let chosen = self.choose_period(lead_minutes);
                self.chosen = Some((now_m, lead_minutes, chosen));
                chosen
            }
        };
        let (period, fit, persistence) = chosen?;
        // Beyond one period from now the history has nothing to say.
        let last = now_m
            + minutes(horizon)
                .max(lead_minutes)
                .min(period.max(lead_minutes));
        let series: Vec<(i64, u32)> = (now_m..=last)
            .filter_map(|m| self.at(m - period).map(|v| (m, v)))
            .collect();
        let (at, workers) = series
            .iter()
            .filter(|(m, _)| *m <= now_m + lead_minutes)
            .copied()
            .max_by_key(|&(m, v)| (v, std::cmp::Reverse(m)))?;
        // Scored when its minute has passed: the lead's last minute.
        let target = now_m + lead_minutes;
        if self.open.back().is_none_or(|(m, _)| *m < target)
            && let Some(v) = self.at(target - period)
        {
            self.open.push_back((target, v));
        }
        Some(Forecast {
            workers,
            at: Timestamp(at * MINUTE_MS).max(now),
            series: series
                .into_iter()
                .map(|(m, v)| (Timestamp(m * MINUTE_MS).max(now), v))
                .collect(),
            period: Duration::from_secs(period as u64 * 60),
            fit,
            persistence,
            error_so_far: (self.scored > 0)
                .then(|| (self.abs_error as f64 / self.scored as f64, self.scored)),
        })
    }

    /// The period whose forecast erred least over the last day (the
    /// shortest within 10 % of the best), with its error and the error of
    /// "nothing changes over the lead"; `None` unless it beats the latter.
    fn choose_period(&self, lead_minutes: i64) -> Option<Period> {
        let persistence = self.lag_error(lead_minutes.max(1))?;
        let scores: Vec<(i64, f64)> = PERIODS
            .iter()
            .filter_map(|&p| self.lag_error(p).map(|e| (p, e)))
            .collect();
        let best = scores.iter().map(|(_, e)| *e).fold(f64::INFINITY, f64::min);
        let &(period, fit) = scores.iter().find(|(_, e)| *e <= best * 1.1 + 0.01)?;
        (fit < persistence).then_some((period, fit, persistence))
    }
}

impl Forecast {
    /// Whether a launch must start now, and for what: the first stage `j`
    /// at which the forecast need up to `now + lead + j × cycle` exceeds
    /// what `managed` workers plus `j` more launches of `batch` (one per
    /// `cycle`: a launch, its verification and the cooldown) could hold.
    /// So a peak larger than one batch starts as many cycles early as it
    /// needs, and one a single batch covers starts one lead early. Needs
    /// count up to `cap` (`max_workers`): a peak no fleet may reach must
    /// not start the launches a cycle earlier still.
    pub fn due(
        &self,
        now: Timestamp,
        managed: u32,
        (batch, cap): (u32, u32),
        lead: Duration,
        cycle: Duration,
    ) -> Option<(u32, Timestamp)> {
        let mut peak: Option<(u32, Timestamp)> = None;
        let mut stage = 0u32;
        let mut end = now.plus(lead);
        for &(at, v) in &self.series {
            let v = v.min(cap);
            while at > end {
                if let Some((need, _)) = peak
                    && need > managed.saturating_add(stage.saturating_mul(batch))
                {
                    return peak;
                }
                stage += 1;
                end = end.plus(cycle);
            }
            if peak.is_none_or(|(need, _)| v > need) {
                peak = Some((v, at));
            }
        }
        peak.filter(|(need, _)| *need > managed.saturating_add(stage.saturating_mul(batch)))
    }
}

/// The workers the cluster needs now: its pods (on workers, or pending
/// and helpable) packed onto workers offering `template`, or what brings
/// the average CPU to `cpu_target_percent` on the Ready workers, whichever
/// is more, and never fewer than `min_workers`.
pub fn needed(
    settings: &Settings,
    view: &ClusterView,
    cpu_percent: f64,
    template: Resources,
    pending: &[&Pod],
) -> u32 {
    let workers: super::id_map::IdSet = view.nodes.iter().map(|n| n.name.as_str()).collect();
    let placed = view
        .pods
        .iter()
        .filter(|p| !p.is_finished() && p.owner_kind.as_deref() != Some("DaemonSet"))
        .filter(|p| p.node_name.as_deref().is_some_and(|n| workers.contains(n)));
    let requested = placed
        .chain(pending.iter().copied())
        .fold(Resources::default(), |acc, p| acc.plus(p.requests));
    let share = |used: u64, offered: u64| {
        if offered == 0 {
            0.0
        } else {
            used as f64 / offered as f64
        }
    };
    let for_pods = share(requested.cpu_millis, template.cpu_millis)
        .max(share(requested.memory_bytes, template.memory_bytes))
        .ceil();
    let ready = view.ready_workers() as f64;
    let for_cpu = (ready * cpu_percent / settings.policy.cpu_target_percent.max(1.0)).ceil();
    (for_pods.max(for_cpu) as u32).max(settings.policy.min_workers)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_767_571_200_000;

    fn at_minute(m: i64) -> Timestamp {
        Timestamp(T0 + m * MINUTE_MS)
    }

    /// A sale every two hours: 10 workers for 20 minutes, 4 otherwise.
    fn sale(m: i64) -> u32 {
        if m.rem_euclid(120) < 20 { 10 } else { 4 }
    }

    fn history(minutes: i64, load: impl Fn(i64) -> u32) -> DemandHistory {
        let mut h = DemandHistory::default();
        for m in 0..minutes {
            // Four ticks a minute, as at the default 15-s interval.
            for _ in 0..4 {
                h.record(at_minute(m), load(m));
            }
        }
        h
    }

    #[test]
    fn a_load_that_repeats_every_two_hours_is_forecast_one_lead_ahead() {
        let lead = Duration::from_secs(180);
        // Five hours seen; minute 357 is three minutes before the 360 sale.
        let mut h = history(357, sale);
        let f = h.forecast(at_minute(357), lead, lead).expect("a forecast");
        assert_eq!(f.period, Duration::from_secs(7200), "{f:?}");
        assert_eq!(f.workers, 10, "{f:?}");
        assert_eq!(f.at, at_minute(360));
        assert!(f.fit < f.persistence, "{f:?}");
        assert_eq!(f.error_so_far, None);
        // Far from a sale the forecast is the quiet load.
        let mut h = history(300, sale);
        assert_eq!(
            h.forecast(at_minute(300), lead, lead).map(|f| f.workers),
            Some(4)
        );
        let text = f.describe(at_minute(357));
        assert!(
            text.contains("period 2h") && text.contains("in 3m"),
            "{text}"
        );
    }

    #[test]
    fn a_peak_larger_than_one_batch_starts_as_many_cycles_early_as_it_needs() {
        let lead = Duration::from_secs(180);
        let cycle = Duration::from_secs(300);
        let horizon = Duration::from_secs(30 * 60);
        // 4 managed, 10 needed at the sale (minute 360), batches of 3, one
        // every 5 minutes after the first: +3 one lead after a launch, +3
        // a cycle later, so the first launch is due 3 + 5 minutes before
        // the sale...
        let f = |now: i64| {
            history(now, sale)
                .forecast(at_minute(now), lead, horizon)
                .expect("a forecast")
        };
        let due =
            |now: i64, managed: u32| f(now).due(at_minute(now), managed, (3, 100), lead, cycle);
        assert_eq!(due(352, 4), Some((10, at_minute(360))));
        assert_eq!(due(351, 4), None, "a minute before it would be");
        // ...and what one batch covers is due one lead early.
        assert_eq!(due(357, 7), Some((10, at_minute(360))));
        assert_eq!(due(356, 7), None);
        assert_eq!(due(357, 9), Some((10, at_minute(360))));
        // Nothing is due when the fleet already holds the peak.
        assert_eq!(due(357, 10), None);
        // A peak past the cap counts as the cap: 10 at 360 with at most 8
        // is one batch from 5, due one lead early, not a cycle earlier.
        let capped = |now: i64| f(now).due(at_minute(now), 5, (3, 8), lead, cycle);
        assert_eq!(capped(357), Some((8, at_minute(360))));
        assert_eq!(capped(352), None);
    }

    #[test]
    fn forecasts_are_scored_when_their_minute_passes() {
        let lead = Duration::from_secs(120);
        let mut h = history(250, sale);
        for m in 250..300 {
            h.forecast(at_minute(m), lead, lead);
            h.record(at_minute(m), sale(m));
        }
        let f = h.forecast(at_minute(300), lead, lead).expect("a forecast");
        let (mean, n) = f.error_so_far.expect("scored");
        assert!(n >= 45, "{n}");
        assert_eq!(mean, 0.0, "a load that repeats exactly");
        // A load that broke its pattern shows in the error (and then
        // stops the forecast: the period no longer beats "no change").
        for m in 300..330 {
            h.forecast(at_minute(m), lead, lead);
            h.record(at_minute(m), 7);
        }
        let mean = h.abs_error as f64 / h.scored as f64;
        assert!(mean > 0.5, "{mean}");
        assert_eq!(h.forecast(at_minute(330), lead, lead), None);
    }

    #[test]
    fn no_forecast_without_a_repeating_load_or_enough_history() {
        let lead = Duration::from_secs(180);
        // Steady: nothing changes, so no period beats "no change".
        assert_eq!(
            history(600, |_| 5).forecast(at_minute(600), lead, lead),
            None
        );
        // A sale seen once: no period has been scored over an hour yet.
        assert_eq!(
            history(100, sale).forecast(at_minute(100), lead, lead),
            None
        );
        // A load with no period shorter than a day (a ramp).
        let ramp = |m: i64| (m / 30) as u32;
        assert_eq!(
            history(600, ramp).forecast(at_minute(600), lead, lead),
            None
        );
    }

    #[test]
    fn the_history_keeps_two_days_and_an_hour_and_ignores_a_clock_that_goes_back() {
        let mut h = DemandHistory::default();
        h.record(at_minute(10), 3);
        h.record(at_minute(5), 9);
        let m = |x: i64| minute(at_minute(x));
        assert_eq!(h.at(m(10)), Some(3));
        assert_eq!(h.at(m(5)), None);
        h.record(at_minute(10 + KEPT_MINUTES - 1), 4);
        assert_eq!(h.at(m(10)), Some(3), "kept for two days and an hour");
        h.record(at_minute(10 + KEPT_MINUTES), 4);
        assert_eq!(h.at(m(10)), None, "and no longer");
        assert_eq!(h.minutes.len(), 2);
    }
}
