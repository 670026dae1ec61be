//! `--compare static-5,seed-cadence`: the same seeded workload under this
//! engine and under the baselines it must beat:
//! * `static-5`: five workers, never scaled;
//! * `seed-cadence`: the seed design's cadence — the same thresholds, a
//!   decision only every 2 minutes, one node per scale-up, so a launch is
//!   verified at the next 2-minute tick at the earliest;
//! * `oracle`: perfect foresight of the demand (`harness/oracle.rs`), the
//!   physical limit; with it in the list every run is also reported as
//!   worker-hours / the oracle's and pending pod-minutes above the
//!   oracle's.

use super::demo::{Demo, DemoOptions, Speed, WorldWatch, engine_with};
use crate::config::Config;
use crate::runtime::headless::{self, StopAfter};
use crate::runtime::settings::engine_settings;
use crate::runtime::{Mode, Shutdown};
use crate::sim::Summary;
use crate::sim::ports::lock;
use serde::Serialize;
use std::time::Duration;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Baseline {
    Static5,
    SeedCadence,
    Oracle,
}

impl Baseline {
    pub fn name(self) -> &'static str {
        match self {
            Baseline::Static5 => "static-5",
            Baseline::SeedCadence => "seed-cadence",
            Baseline::Oracle => "oracle",
        }
    }
}

/// The `--compare` list (one value, comma-separated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Baselines(pub Vec<Baseline>);

pub fn parse_baselines(text: &str) -> Result<Baselines, String> {
    text.split(',')
        .map(|s| match s.trim() {
            "static-5" => Ok(Baseline::Static5),
            "seed-cadence" => Ok(Baseline::SeedCadence),
            "oracle" => Ok(Baseline::Oracle),
            other => Err(format!(
                "unknown baseline \"{other}\" (static-5, seed-cadence, oracle)"
            )),
        })
        .collect::<Result<_, _>>()
        .map(Baselines)
}

/// One run's figures, as the comparison reports them.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Figures {
    pub worker_hours: f64,
    pub pending_pod_minutes: f64,
    pub p95_unschedulable_seconds: f64,
    pub scale_ups: u32,
    pub scale_downs: u32,
    /// Scale-downs started within 10 min of a scale-up's end.
    pub flapping: u32,
    pub invariant_violations: usize,
    /// Worker-hours / the oracle's, when the oracle ran (`against`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_hours_vs_oracle: Option<f64>,
    /// Pending pod-minutes above the oracle's, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_above_oracle: Option<f64>,
}

impl Figures {
    /// These figures measured against the oracle's.
    pub fn against(mut self, oracle: &Figures) -> Figures {
        self.worker_hours_vs_oracle =
            (oracle.worker_hours > 0.0).then(|| round3(self.worker_hours / oracle.worker_hours));
        self.pending_above_oracle = Some(round3(
            self.pending_pod_minutes - oracle.pending_pod_minutes,
        ));
        self
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Each row against the oracle's, if one of them is the oracle.
pub fn against_oracle(rows: Vec<(&str, Figures)>) -> Vec<(&str, Figures)> {
    let Some(oracle) = rows
        .iter()
        .find(|(name, _)| *name == Baseline::Oracle.name())
        .map(|(_, f)| f.clone())
    else {
        return rows;
    };
    rows.into_iter()
        .map(|(name, f)| (name, f.against(&oracle)))
        .collect()
}

impl From<&Summary> for Figures {
    fn from(s: &Summary) -> Self {
        Figures {
            worker_hours: s.worker_hours,
            pending_pod_minutes: s.pending_pod_minutes,
            p95_unschedulable_seconds: s.p95_unschedulable_seconds,
            scale_ups: s.scale_ups,
            scale_downs: s.scale_downs,
            flapping: s.flapping,
            invariant_violations: s.invariant_violations,
            worker_hours_vs_oracle: None,
            pending_above_oracle: None,
        }
    }
}

fn options(base: &DemoOptions) -> DemoOptions {
    DemoOptions {
        speed: Speed::Max,
        ..base.clone()
    }
}

/// This engine with its defaults (from `config`).
pub async fn engine(config: &Config, base: &DemoOptions, duration: Duration) -> Summary {
    let settings = engine_settings(config);
    run_with_engine(
        config,
        base,
        duration,
        settings,
        config.engine.interval.get(),
    )
    .await
}

pub async fn baseline(
    which: Baseline,
    config: &Config,
    base: &DemoOptions,
    duration: Duration,
) -> Summary {
    match which {
        Baseline::Static5 => {
            let mut config = config.clone();
            config.demo.initial_workers = 5;
            let demo = Demo::new(
                &config,
                &options(&DemoOptions {
                    workers: Some(5),
                    ..base.clone()
                }),
                true,
            );
            // No engine at all: the world just runs.
            let step = config.engine.interval.get();
            let end = demo.ports.clock.now().plus(duration);
            while demo.ports.clock.now() < end {
                demo.clock.advance(step);
                lock(&demo.world).advance_to(demo.ports.clock.now());
            }
            lock(&demo.world).summary()
        }
        Baseline::Oracle => super::oracle::run(config, base, duration),
        Baseline::SeedCadence => {
            run_with_engine(
                config,
                base,
                duration,
                seed_settings(config),
                Duration::from_secs(120),
            )
            .await
        }
    }
}

/// The seed design, fixed whatever this engine's defaults become: CPU above
/// 70 % or pods pending for 3 minutes adds one node; CPU below 30 % for 10
/// minutes removes one; 2 to 10 workers; its 2-minute cadence is its only
/// pacing. Bounds and safety rules come from the config, as for the engine.
pub fn seed_settings(config: &Config) -> crate::engine::Settings {
    let mut s = engine_settings(config);
    let p = &mut s.policy;
    p.cpu_up_percent = 70.0;
    p.cpu_up_for = Duration::ZERO;
    p.pending_for = Duration::from_secs(180);
    p.cpu_down_percent = 30.0;
    p.idle_for = Duration::from_secs(600);
    p.cpu_target_percent = 60.0;
    p.max_scale_up_batch = 1;
    p.scale_up_cooldown = Duration::ZERO;
    p.scale_down_cooldown = Duration::from_secs(600);
    p.predictive = false;
    s
}

async fn run_with_engine(
    config: &Config,
    base: &DemoOptions,
    duration: Duration,
    settings: crate::engine::Settings,
    interval: Duration,
) -> Summary {
    let demo = Demo::new(config, &options(base), false);
    let mut engine = engine_with(&demo, settings, Mode::Auto, base.seed);
    let stop = StopAfter {
        ticks: None,
        duration: Some(duration),
        full_last_interval: true,
    };
    headless::run(
        &mut engine,
        demo.ports.clock.clone(),
        interval,
        stop,
        Some(&mut WorldWatch::new(demo.world.clone())),
        &Shutdown::new(),
    )
    .await;
    lock(&demo.world).summary()
}

/// The comparison table, for people.
pub fn table(rows: &[(&str, Figures)]) -> String {
    let oracle = rows.iter().any(|(_, f)| f.pending_above_oracle.is_some());
    let mut out = format!(
        "{:<14} {:>12} {:>16} {:>16} {:>10} {:>12} {:>9}",
        "",
        "worker-hours",
        "pending pod-min",
        "p95 unsched (s)",
        "scale-ups",
        "scale-downs",
        "flapping"
    );
    if oracle {
        out.push_str(&format!(" {:>10} {:>16}", "wh/oracle", "pending > oracle"));
    }
    out.push('\n');
    for (name, f) in rows {
        out.push_str(&format!(
            "{name:<14} {:>12.1} {:>16.1} {:>16.0} {:>10} {:>12} {:>9}",
            f.worker_hours,
            f.pending_pod_minutes,
            f.p95_unschedulable_seconds,
            f.scale_ups,
            f.scale_downs,
            f.flapping
        ));
        if oracle {
            let ratio = f
                .worker_hours_vs_oracle
                .map_or("-".to_string(), |r| format!("{r:.3}"));
            let above = f
                .pending_above_oracle
                .map_or("-".to_string(), |p| format!("{p:.1}"));
            out.push_str(&format!(" {ratio:>10} {above:>16}"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(worker_hours: f64, pending_pod_minutes: f64) -> Figures {
        Figures {
            worker_hours,
            pending_pod_minutes,
            p95_unschedulable_seconds: 0.0,
            scale_ups: 0,
            scale_downs: 0,
            flapping: 0,
            invariant_violations: 0,
            worker_hours_vs_oracle: None,
            pending_above_oracle: None,
        }
    }

    #[test]
    fn the_seed_cadence_stays_the_seed_design_whatever_the_config_turns_on() {
        let mut config = Config::default();
        config.policy.predictive.enabled = true;
        config.policy.max_workers = 7;
        let s = seed_settings(&config);
        assert!(!s.policy.predictive, "the seed design had no forecast");
        assert_eq!(s.policy.max_scale_up_batch, 1);
        assert_eq!(s.policy.max_workers, 7, "bounds come from the config");
    }

    #[test]
    fn every_row_is_measured_against_the_oracle_when_it_ran() {
        assert_eq!(
            parse_baselines("static-5, oracle"),
            Ok(Baselines(vec![Baseline::Static5, Baseline::Oracle]))
        );
        assert!(parse_baselines("psychic").unwrap_err().contains("oracle"));
        let rows = against_oracle(vec![
            ("engine", figures(115.0, 30.0)),
            ("oracle", figures(100.0, 10.0)),
        ]);
        assert_eq!(rows[0].1.worker_hours_vs_oracle, Some(1.15));
        assert_eq!(rows[0].1.pending_above_oracle, Some(20.0));
        assert_eq!(rows[1].1.worker_hours_vs_oracle, Some(1.0));
        let text = table(&rows);
        assert!(text.lines().next().unwrap().contains("wh/oracle"), "{text}");
        assert!(text.contains("1.150") && text.contains("20.0"), "{text}");
        // Without the oracle, no such columns and nothing computed.
        let rows = against_oracle(vec![("engine", figures(115.0, 30.0))]);
        assert_eq!(rows[0].1.pending_above_oracle, None);
        assert!(!table(&rows).contains("oracle"));
        let json = serde_json::to_value(&rows[0].1).unwrap();
        assert!(json.get("worker_hours_vs_oracle").is_none(), "{json}");
    }
}
