use super::*;
use crate::engine::operation::{Intent, start};
use crate::engine::testkit::{at, cluster, view_mut};
use crate::engine::{Decision, TickReport};
use crate::ports::{Origin, StateSnapshot};

fn tick(obs: crate::engine::Observation, action: Action) -> TickReport {
    TickReport {
        at: obs.at,
        decision: Decision {
            at: obs.at,
            action,
            reasons: vec![],
            sanity_stop: None,
            standing: Default::default(),
            scale_up_held: None,
            scale_down_held: None,
        },
        observation: obs,
        state: Ok(StateSnapshot {
            lock: None,
            record: OpRecord::default(),
        }),
        exec: None,
        findings: vec![],
        boot: vec![],
        boot_stats: vec![],
        cluster_source: None,
        latency: Default::default(),
    }
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn a_tick_sets_decisions_gauges_and_health() {
    let m = EngineMetrics::default();
    assert!(m.health(Duration::from_secs(60)).is_err(), "no tick yet");
    let now = at(100);
    let mut obs = cluster(3, 62.5, now);
    view_mut(&mut obs).nodes[0].cordoned = true;
    m.record_tick(&tick(obs.clone(), Action::Hold));
    m.record_tick(&tick(obs, Action::ScaleUp { count: 2 }));
    let text = m.render();
    assert_eq!(
        sample(&text, "k3s_autoscaler_decisions_total{outcome=\"hold\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "k3s_autoscaler_decisions_total{outcome=\"scale_up\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "k3s_autoscaler_worker_cpu_percent"),
        Some(62.5)
    );
    assert_eq!(
        sample(&text, "k3s_autoscaler_unschedulable_pods"),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "k3s_autoscaler_workers{state=\"running\"}"),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, "k3s_autoscaler_nodes{state=\"cordoned\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "k3s_autoscaler_backend_errors_total{backend=\"ec2\"}"
        ),
        Some(0.0)
    );
    assert!(m.health(Duration::from_secs(60)).is_ok());
}

#[test]
fn an_unreachable_backend_is_counted_and_fails_health() {
    let m = EngineMetrics::default();
    let now = at(100);
    let mut obs = cluster(2, 50.0, now);
    obs.cpu = Reading::unknown("connection refused");
    m.record_tick(&tick(obs, Action::Hold));
    let text = m.render();
    assert_eq!(
        sample(
            &text,
            "k3s_autoscaler_backend_errors_total{backend=\"prometheus\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "k3s_autoscaler_backend_up{backend=\"prometheus\"}"),
        Some(0.0)
    );
    assert_eq!(sample(&text, "k3s_autoscaler_worker_cpu_percent"), None);
    let why = m.health(Duration::from_secs(60)).unwrap_err();
    assert!(why.contains("prometheus: connection refused"), "{why}");
}

#[test]
fn phase_durations_and_results_come_from_the_writes_this_engine_made() {
    let m = EngineMetrics::default();
    let empty = OpRecord::default();
    let intended = start(
        &empty,
        &Intent::ScaleUp { count: 1 },
        "op-1",
        Origin::Engine,
        vec![],
        1,
        at(0),
    );
    m.record_write(&empty, &intended);
    let mut launched = intended.clone();
    let op = launched.op.as_mut().unwrap();
    op.phase = OpPhase::Launched;
    op.updated = at(4);
    m.record_write(&intended, &launched);
    let mut done = launched.clone();
    let op = done.op.as_mut().unwrap();
    op.phase = OpPhase::Done;
    op.updated = at(94);
    m.record_write(&launched, &done);
    // Writing the same terminal record again (a retried write) counts nothing.
    m.record_write(&done, &done);
    let text = m.render();
    let p = "k3s_autoscaler_operation_phase_duration_seconds";
    assert_eq!(
        sample(&text, &format!("{p}_sum{{phase=\"LaunchIntended\"}}")),
        Some(4.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("{p}_bucket{{phase=\"Launched\",le=\"60\"}}")
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("{p}_bucket{{phase=\"Launched\",le=\"120\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "k3s_autoscaler_operations_total{kind=\"scale-up\",result=\"done\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn an_adopted_operation_measures_no_phase_it_did_not_see_start() {
    let m = EngineMetrics::default();
    let empty = OpRecord::default();
    let mut draining = start(
        &empty,
        &Intent::ScaleUp { count: 1 },
        "op-9",
        Origin::Engine,
        vec![],
        1,
        at(0),
    );
    draining.op.as_mut().unwrap().phase = OpPhase::Verifying;
    let mut done = draining.clone();
    done.op.as_mut().unwrap().phase = OpPhase::Failed;
    m.record_write(&draining, &done);
    let text = m.render();
    assert!(!text.contains("phase=\"Verifying\""), "{text}");
    assert_eq!(
        sample(
            &text,
            "k3s_autoscaler_operations_total{kind=\"scale-up\",result=\"failed\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn the_lock_gauge_follows_acquire_and_release() {
    let m = EngineMetrics::default();
    m.lock_acquired();
    assert_eq!(sample(&m.render(), "k3s_autoscaler_lock_held"), Some(1.0));
    m.lock_lost();
    m.lock_released();
    let text = m.render();
    assert_eq!(sample(&text, "k3s_autoscaler_lock_held"), Some(0.0));
    assert_eq!(
        sample(&text, "k3s_autoscaler_lock_acquisitions_total"),
        Some(1.0)
    );
    assert_eq!(sample(&text, "k3s_autoscaler_lock_losses_total"), Some(1.0));
}

#[test]
fn failed_attempts_are_counted_and_enough_in_a_row_make_health_fail() {
    let m = EngineMetrics::default();
    m.set_failure_limit(2);
    let now = at(100);
    let failed = |message: &str| {
        let mut t = tick(cluster(3, 50.0, now), Action::ScaleUp { count: 1 });
        t.exec = Some(crate::engine::ExecReport {
            lock_taken: true,
            error: Some(crate::engine::ExecFailure {
                backend: "dynamodb",
                op_id: Some("op-1".into()),
                message: message.into(),
            }),
            ..Default::default()
        });
        t
    };
    m.record_tick(&failed("ValidationException: token too long"));
    assert!(
        m.health(Duration::from_secs(60)).is_ok(),
        "one failure is not a streak"
    );
    m.record_tick(&failed("ValidationException: token too long"));
    let why = m.health(Duration::from_secs(60)).unwrap_err();
    assert!(why.contains("2 attempts in a row"), "{why}");
    assert!(why.contains("op-1: ValidationException"), "{why}");
    let text = m.render();
    assert_eq!(
        sample(
            &text,
            "k3s_autoscaler_backend_errors_total{backend=\"dynamodb\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "k3s_autoscaler_consecutive_failed_attempts"),
        Some(2.0)
    );
    // A tick that did not try changes nothing; one that went through ends it.
    m.record_tick(&tick(cluster(3, 50.0, now), Action::Hold));
    assert!(m.health(Duration::from_secs(60)).is_err());
    let mut ok = tick(cluster(3, 50.0, now), Action::Hold);
    ok.exec = Some(crate::engine::ExecReport {
        lock_taken: true,
        ..Default::default()
    });
    m.record_tick(&ok);
    assert!(m.health(Duration::from_secs(60)).is_ok());
}
