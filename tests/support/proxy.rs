//! A counting, checking proxy in front of an AWS emulator, on loopback:
//! forwards every call, records the ones that could change something (by
//! DynamoDB target or EC2 action), so a test can prove a run made none, and
//! checks every request against what the real service accepts
//! (`service_model`), so a test can prove the emulator's leniency hid
//! nothing.
#![allow(dead_code)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex};

use super::service_model::{ServiceModel, check_ec2, decode_form};

const DYNAMODB_READS: [&str; 8] = [
    "GetItem",
    "BatchGetItem",
    "Query",
    "Scan",
    "DescribeTable",
    "ListTables",
    "TransactGetItems",
    "DescribeEndpoints",
];

#[derive(Clone)]
struct Upstream {
    url: String,
    http: reqwest::Client,
    calls: Arc<Mutex<Vec<(String, bool)>>>,
    violations: Arc<Mutex<Vec<String>>>,
    model: Arc<ServiceModel>,
    /// `service:Operation` answered by the proxy itself with this HTTP
    /// status and JSON body, never forwarded: a refusal from outside the
    /// model (what the real service says to a request it rejects).
    refuse: Option<(String, u16, String)>,
    /// How many more matching calls to refuse (`None`: all of them).
    refusals_left: Arc<Mutex<Option<usize>>>,
}

pub struct CountingProxy {
    pub url: String,
    calls: Arc<Mutex<Vec<(String, bool)>>>,
    violations: Arc<Mutex<Vec<String>>>,
}

impl CountingProxy {
    pub async fn start(upstream: &str) -> CountingProxy {
        CountingProxy::with_refusal(upstream, None, None).await
    }

    /// A proxy that answers `call` (`dynamodb:TransactWriteItems`) itself,
    /// with DynamoDB's JSON error shape: `code` (`ValidationException`) and
    /// `message`, HTTP 400.
    pub async fn refusing(upstream: &str, call: &str, code: &str, message: &str) -> CountingProxy {
        let body = serde_json::json!({
            "__type": format!("com.amazon.coral.validate#{code}"),
            "message": message,
        })
        .to_string();
        CountingProxy::with_refusal(upstream, Some((call.to_string(), 400, body)), None).await
    }

    /// The first `times` operation writes are cancelled as DynamoDB cancels
    /// a transaction that met another one on the same item.
    pub async fn conflicting(upstream: &str, times: usize) -> CountingProxy {
        let body = serde_json::json!({
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict]",
            "CancellationReasons": [
                {"Code": "None"},
                {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
            ],
        })
        .to_string();
        CountingProxy::with_refusal(
            upstream,
            Some(("dynamodb:TransactWriteItems".into(), 400, body)),
            Some(times),
        )
        .await
    }

    async fn with_refusal(
        upstream: &str,
        refuse: Option<(String, u16, String)>,
        times: Option<usize>,
    ) -> CountingProxy {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let state = Upstream {
            url: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            calls: calls.clone(),
            violations: violations.clone(),
            model: Arc::new(ServiceModel::dynamodb()),
            refuse,
            refusals_left: Arc::new(Mutex::new(times)),
        };
        let app = Router::new().fallback(forward).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        CountingProxy {
            url,
            calls,
            violations,
        }
    }

    /// Every request so far that the real service would have refused.
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }

    /// Every call so far, as `service:Operation`.
    pub fn calls(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|(a, _)| a.clone())
            .collect()
    }

    pub fn mutating(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, m)| *m)
            .map(|(a, _)| a.clone())
            .collect()
    }

    pub fn total(&self) -> usize {
        self.calls.lock().unwrap().len()
    }
}

/// The operation an AWS request performs, and whether it can change state.
fn classify(headers: &HeaderMap, body: &[u8]) -> (String, bool) {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        let op = target.rsplit('.').next().unwrap_or(target).to_string();
        let mutating = !DYNAMODB_READS.contains(&op.as_str());
        return (format!("dynamodb:{op}"), mutating);
    }
    let form = String::from_utf8_lossy(body);
    let action = form
        .split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .unwrap_or("unknown")
        .to_string();
    let mutating = !action.starts_with("Describe");
    (format!("ec2:{action}"), mutating)
}

/// What the real service would refuse in this request.
fn check(model: &ServiceModel, call: &str, body: &[u8]) -> Vec<String> {
    if let Some(op) = call.strip_prefix("dynamodb:") {
        return match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(json) => model.check(op, &json),
            Err(e) => vec![format!("{call}: the body is not JSON: {e}")],
        };
    }
    check_ec2(&decode_form(&String::from_utf8_lossy(body)))
}

async fn forward(
    State(up): State<Upstream>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (call, mutating) = classify(&headers, &body);
    let problems = check(&up.model, &call, &body);
    up.violations.lock().unwrap().extend(problems);
    let refused = up
        .refuse
        .as_ref()
        .filter(|(c, _, _)| *c == call)
        .filter(|_| {
            let mut left = up.refusals_left.lock().unwrap();
            match left.as_mut() {
                None => true,
                Some(0) => false,
                Some(n) => {
                    *n -= 1;
                    true
                }
            }
        })
        .cloned();
    up.calls.lock().unwrap().push((call, mutating));
    if let Some((_, status, body)) = refused {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        return (
            status,
            [("content-type", "application/x-amz-json-1.0".to_string())],
            body,
        )
            .into_response();
    }
    match relay(
        &up.http,
        &up.url,
        method,
        &uri,
        &headers,
        body,
        "application/octet-stream",
    )
    .await
    {
        Ok((status, content_type, bytes)) => {
            (status, [("content-type", content_type)], bytes).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e).into_response(),
    }
}

/// Send one request on to `upstream` as it came (the signature covers the
/// headers, so they go unchanged but for host and length), and return the
/// answer's status, content type (or `default_type`) and body.
pub async fn relay(
    http: &reqwest::Client,
    upstream: &str,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
    default_type: &str,
) -> Result<(StatusCode, String, Bytes), String> {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut request = http
        .request(method, format!("{upstream}{path}"))
        .body(body.to_vec());
    for (name, value) in headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let answer = request.send().await.map_err(|e| e.to_string())?;
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or(default_type)
        .to_string();
    let bytes = answer.bytes().await.unwrap_or_default();
    Ok((status, content_type, bytes))
}
