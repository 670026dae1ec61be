//! Notifications (`[notify]`) against a webhook on loopback: what the
//! engine tells, and a receiver that is down, slow, hangs or answers 500.

use crate::circuit_breaker::{broken_launches, resume, run_for};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use k3s_autoscaler::ports::Timestamp;
use k3s_autoscaler::runtime::Mode;
use k3s_autoscaler::runtime::notify::{Delivery, Format, Notice, NoticeKind, Notifier};
use k3s_autoscaler::runtime::{Engine, Shutdown};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the receiver does with each request, by its number (0, 1, …).
#[derive(Clone, Copy)]
enum Behaviour {
    Accept,
    /// 500 for the first `n` requests, then 200.
    FailFirst(usize),
    /// 404 always.
    NotFound,
    /// Answers 200 after this long.
    Slow(Duration),
}

#[derive(Clone)]
struct Receiver {
    behaviour: Behaviour,
    requests: Arc<Mutex<Vec<Value>>>,
}

async fn hook(State(r): State<Receiver>, axum::Json(body): axum::Json<Value>) -> StatusCode {
    let n = {
        let mut requests = r.requests.lock().unwrap();
        requests.push(body);
        requests.len() - 1
    };
    match r.behaviour {
        Behaviour::Accept => StatusCode::OK,
        Behaviour::FailFirst(k) if n < k => StatusCode::INTERNAL_SERVER_ERROR,
        Behaviour::FailFirst(_) => StatusCode::OK,
        Behaviour::NotFound => StatusCode::NOT_FOUND,
        Behaviour::Slow(d) => {
            tokio::time::sleep(d).await;
            StatusCode::OK
        }
    }
}

/// A webhook on a loopback port; its URL carries a secret path, as a
/// Slack webhook does.
async fn receiver(behaviour: Behaviour) -> (String, Arc<Mutex<Vec<Value>>>) {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let router = Router::new()
        .route("/hooks/T0P-SECRET", post(hook))
        .with_state(Receiver {
            behaviour,
            requests: requests.clone(),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/T0P-SECRET", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (url, requests)
}

fn quick(queue: usize, attempts: u32, timeout: Duration) -> Delivery {
    Delivery {
        queue,
        attempts,
        timeout,
        first_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
    }
}

fn notice(text: &str) -> Notice {
    Notice {
        cluster: String::new(),
        kind: NoticeKind::Finding,
        at: Timestamp(1_767_571_200_000),
        op_id: None,
        text: text.into(),
    }
}

/// Wait (real time, at most 20 s) until `done` holds.
async fn until(mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

fn kinds(requests: &Mutex<Vec<Value>>) -> Vec<String> {
    requests
        .lock()
        .unwrap()
        .iter()
        .map(|b| b["kind"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[tokio::test]
async fn the_engine_tells_each_operation_the_circuit_opening_and_closing() {
    let (url, requests) = receiver(Behaviour::Accept).await;
    let (config, demo) = broken_launches(true);
    let mut engine: Engine =
        k3s_autoscaler::harness::demo::engine_on(&demo, &config, Mode::Auto, 5);
    let notifier = Notifier::start(
        url,
        "demo",
        Format::Json,
        quick(100, 3, Duration::from_secs(5)),
    );
    engine.set_notifier(notifier.clone());
    run_for(&mut engine, &demo, &config, 3.0).await;
    assert!(
        until(|| kinds(&requests).iter().any(|k| k == "circuit_opened")).await,
        "{:?}",
        kinds(&requests)
    );
    let seen = kinds(&requests);
    for kind in ["operation_started", "operation_failed", "circuit_opened"] {
        assert!(seen.iter().any(|k| k == kind), "{kind} missing: {seen:?}");
    }
    let bodies = requests.lock().unwrap().clone();
    let started = bodies
        .iter()
        .find(|b| b["kind"] == "operation_started")
        .expect("a start");
    assert_eq!(started["cluster"], "demo");
    let op = started["op_id"].as_str().expect("its op id");
    assert!(
        bodies.iter().any(|b| b["kind"] == "operation_failed"
            && b["op_id"] == op
            && b["text"]
                .as_str()
                .is_some_and(|t| t.contains("never joined"))),
        "the start's own end: {bodies:#?}"
    );
    // Each write is told once, by its writer: one start per operation.
    let starts: Vec<&str> = bodies
        .iter()
        .filter(|b| b["kind"] == "operation_started")
        .filter_map(|b| b["op_id"].as_str())
        .collect();
    let mut unique = starts.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(starts.len(), unique.len(), "{bodies:#?}");

    // The operator resumes from anywhere: the next tick tells.
    resume(&demo, &config).await;
    engine.tick(None, &Shutdown::new()).await;
    assert!(
        until(|| kinds(&requests).iter().any(|k| k == "circuit_closed")).await,
        "{:?}",
        kinds(&requests)
    );
    notifier.flush(Duration::from_secs(10)).await;
    let (sent, dropped, failed) = notifier.stats().counts();
    assert_eq!((dropped, failed), (0, 0));
    assert_eq!(sent as usize, requests.lock().unwrap().len());
    let metrics = engine.metrics().render();
    assert!(
        metrics.contains(&format!("k3s_autoscaler_notifications_sent_total {sent}")),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_webhook_that_answers_500_twice_gets_the_notice_on_the_third_attempt() {
    let (url, requests) = receiver(Behaviour::FailFirst(2)).await;
    let notifier = Notifier::start(
        url,
        "c",
        Format::Slack,
        quick(10, 5, Duration::from_secs(5)),
    );
    notifier.send(notice("node w3 is cordoned outside any operation"));
    assert!(until(|| notifier.stats().counts().0 == 1).await);
    let bodies = requests.lock().unwrap().clone();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    assert_eq!(
        bodies[2]["text"], "[c] node w3 is cordoned outside any operation",
        "Slack's shape"
    );
    assert_eq!(notifier.stats().counts(), (1, 0, 0));
}

#[tokio::test]
async fn a_refusal_is_not_retried_and_a_receiver_that_is_down_costs_attempts_not_the_engine() {
    // 404: refused for good, one request.
    let (url, requests) = receiver(Behaviour::NotFound).await;
    let notifier = Notifier::start(url, "c", Format::Json, quick(10, 5, Duration::from_secs(5)));
    notifier.send(notice("one"));
    assert!(until(|| notifier.stats().counts().2 == 1).await);
    assert_eq!(requests.lock().unwrap().len(), 1);

    // Nobody listens on the port: every attempt fails, then it is given
    // up; the error says why without the URL (its path is the secret).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/hooks/T0P-SECRET");
    let notifier = Notifier::start(url, "c", Format::Json, quick(10, 3, Duration::from_secs(2)));
    let sent_at = Instant::now();
    notifier.send(notice("two"));
    assert!(
        sent_at.elapsed() < Duration::from_secs(1),
        "send never waits"
    );
    assert!(until(|| notifier.stats().counts().2 == 1).await);
    let error = notifier.stats().last_error().expect("the reason");
    assert!(
        !error.contains("T0P-SECRET") && !error.contains("hooks"),
        "{error}"
    );
}

#[tokio::test]
async fn a_slow_or_hanging_webhook_fills_the_queue_and_the_drops_are_counted() {
    // Each answer takes 30 s; the attempt gives up after 300 ms.
    let (url, requests) = receiver(Behaviour::Slow(Duration::from_secs(30))).await;
    let notifier = Notifier::start(
        url,
        "c",
        Format::Json,
        quick(2, 1, Duration::from_millis(300)),
    );
    for n in 0..10 {
        notifier.send(notice(&format!("notice {n}")));
    }
    // Two fit the queue and one may already be on its way: the rest are
    // dropped at once, without waiting for the webhook.
    let (_, dropped, _) = notifier.stats().counts();
    assert!((7..=8).contains(&dropped), "dropped {dropped}");
    // The ones queued time out one after the other and are given up.
    assert!(until(|| notifier.stats().counts().2 == 10 - dropped).await);
    assert_eq!(requests.lock().unwrap().len() as u64, 10 - dropped);
}
