//! moto behind a loopback proxy that answers like EC2 where moto does not.
//!
//! * `ClientToken` idempotency (moto stores the token and ignores it): the
//!   same token with the same parameters returns the first launch's answer,
//!   without launching; the same token with other parameters (another
//!   subnet, so another zone; another type; other user data) is refused with
//!   `IdempotentParameterMismatch`, as EC2 does.
//! * Capacity and limit refusals by instance type, in EC2's XML error shape
//!   (`InsufficientInstanceCapacity`, `VcpuLimitExceeded`, …): moto has
//!   none of them, so the adapter's fallback never ran against it.
//! * A lost answer: the next `RunInstances` is applied, then its response
//!   dropped (the connection reset), as a timeout leaves it.
//! * Eventual consistency: for a while after `RunInstances`, the new
//!   instances are missing from `DescribeInstances` (filtered listings), and
//!   asking for them by id is `InvalidInstanceID.NotFound`.
//! * Terminated instances are forgotten (EC2: after about an hour; here
//!   after `forget_terminated_after`): gone from every listing, NotFound by
//!   id, and a `ClientToken` whose instances are all forgotten is
//!   `IdempotentInstanceTerminated`, not a fresh launch.
//!
//! Every request is also checked against EC2's documented limits
//! (`service_model::check_ec2`).
#![allow(dead_code)]

use super::service_model::{check_ec2, decode_form};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Form fields that are not parameters of the launch itself.
const NOT_PARAMETERS: [&str; 3] = ["Action", "Version", "ClientToken"];

#[derive(Default)]
struct Behaviour {
    /// instance type → the error code RunInstances answers for it.
    refuse_types: BTreeMap<String, String>,
    /// Drop the response of this many next successful RunInstances.
    lose_answers: usize,
    /// ClientToken → (the launch's parameters, EC2's first answer).
    tokens: BTreeMap<String, (BTreeMap<String, String>, Bytes)>,
    /// Every RunInstances that moto actually executed (launched).
    launches: usize,
    /// How long new instances stay invisible to DescribeInstances.
    invisible_for: std::time::Duration,
    /// Instance id → when its launch was answered.
    launched_at: BTreeMap<String, std::time::Instant>,
    /// Serve filter-only DescribeInstances in pages of this many
    /// reservations (EC2's smallest `MaxResults` is 5), whatever the
    /// caller asked for: more than one page without thousands of launches.
    page_size: Option<usize>,
    /// Instance id → when TerminateInstances was answered for it.
    terminated_at: BTreeMap<String, std::time::Instant>,
    /// Forget terminated instances this long after their termination.
    forget_terminated_after: Option<std::time::Duration>,
    violations: Vec<String>,
}

impl Behaviour {
    fn forgotten(&self) -> Vec<String> {
        let Some(after) = self.forget_terminated_after else {
            return Vec::new();
        };
        self.terminated_at
            .iter()
            .filter(|(_, at)| at.elapsed() >= after)
            .map(|(id, _)| id.clone())
            .collect()
    }
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    http: reqwest::Client,
    behaviour: Arc<Mutex<Behaviour>>,
}

pub struct StrictEc2 {
    pub url: String,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl StrictEc2 {
    pub async fn start(upstream: &str) -> StrictEc2 {
        let behaviour = Arc::new(Mutex::new(Behaviour::default()));
        let shared = Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            behaviour: behaviour.clone(),
        };
        let app = Router::new().fallback(handle).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StrictEc2 { url, behaviour }
    }

    /// RunInstances for `instance_type` answers `code` from now on.
    pub fn refuse_type(&self, instance_type: &str, code: &str) {
        self.behaviour
            .lock()
            .unwrap()
            .refuse_types
            .insert(instance_type.into(), code.into());
    }

    /// Capacity is back for every type.
    pub fn clear_refusals(&self) {
        self.behaviour.lock().unwrap().refuse_types.clear();
    }

    /// The next `n` RunInstances that launch lose their answer.
    pub fn lose_next_answers(&self, n: usize) {
        self.behaviour.lock().unwrap().lose_answers = n;
    }

    /// Terminated instances vanish from EC2 `d` after their termination.
    pub fn forget_terminated_after(&self, d: std::time::Duration) {
        self.behaviour.lock().unwrap().forget_terminated_after = Some(d);
    }

    /// Filter-only DescribeInstances answers in pages of `n` reservations.
    pub fn page_size(&self, n: usize) {
        self.behaviour.lock().unwrap().page_size = Some(n);
    }

    /// New instances stay out of DescribeInstances for `d` after launch.
    pub fn invisible_for(&self, d: std::time::Duration) {
        self.behaviour.lock().unwrap().invisible_for = d;
    }

    /// RunInstances calls that launched something (not answered from a
    /// token, not refused).
    pub fn launches(&self) -> usize {
        self.behaviour.lock().unwrap().launches
    }

    pub fn violations(&self) -> Vec<String> {
        self.behaviour.lock().unwrap().violations.clone()
    }
}

/// EC2's error response (Query protocol, XML), as the SDK parses it.
pub fn ec2_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>00000000-0000-4000-8000-000000000000</RequestID></Response>"
    );
    (status, [("content-type", "text/xml;charset=UTF-8")], body).into_response()
}

async fn handle(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = decode_form(&String::from_utf8_lossy(&body));
    let action = form.get("Action").cloned().unwrap_or_default();
    s.behaviour
        .lock()
        .unwrap()
        .violations
        .extend(check_ec2(&form));
    if action == "DescribeInstances" {
        return describe(&s, &form, method, &uri, &headers, body).await;
    }
    if action == "TerminateInstances" {
        let ids: Vec<String> = form
            .iter()
            .filter(|(k, _)| k.starts_with("InstanceId."))
            .map(|(_, v)| v.clone())
            .collect();
        let (response, answer) = forward(&s, method, &uri, &headers, body).await;
        if answer.is_some() {
            let mut b = s.behaviour.lock().unwrap();
            let now = std::time::Instant::now();
            for id in ids {
                b.terminated_at.entry(id).or_insert(now);
            }
        }
        return response;
    }
    if action != "RunInstances" {
        return forward(&s, method, &uri, &headers, body).await.0;
    }
    let params: BTreeMap<String, String> = form
        .iter()
        .filter(|(k, _)| !NOT_PARAMETERS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let token = form.get("ClientToken").cloned();
    {
        let b = s.behaviour.lock().unwrap();
        if let Some(token) = &token
            && let Some((first, answer)) = b.tokens.get(token)
        {
            if *first != params {
                let changed: Vec<&String> = params
                    .keys()
                    .chain(first.keys())
                    .filter(|k| params.get(*k) != first.get(*k))
                    .collect();
                return ec2_error(
                    StatusCode::BAD_REQUEST,
                    "IdempotentParameterMismatch",
                    &format!(
                        "The client token {token} was used before with other parameters ({changed:?})"
                    ),
                );
            }
            let launched = instance_ids(answer);
            let forgotten = b.forgotten();
            if !launched.is_empty() && launched.iter().all(|id| forgotten.contains(id)) {
                return ec2_error(
                    StatusCode::BAD_REQUEST,
                    "IdempotentInstanceTerminated",
                    &format!(
                        "The client token {token} was used for instances that have since terminated"
                    ),
                );
            }
            let answer = answer.clone();
            drop(b);
            return lose_or(&s, answer);
        }
        if let Some(code) = form.get("InstanceType").and_then(|t| b.refuse_types.get(t)) {
            let t = form.get("InstanceType").cloned().unwrap_or_default();
            let message = match code.as_str() {
                "InsufficientInstanceCapacity" => format!(
                    "We currently do not have sufficient {t} capacity in the Availability Zone you requested."
                ),
                "VcpuLimitExceeded" => format!(
                    "You have requested more vCPU capacity than your current vCPU limit allows for the instance bucket that the specified instance type {t} belongs to."
                ),
                "Unsupported" => format!(
                    "Your requested instance type ({t}) is not supported in your requested Availability Zone."
                ),
                "InstanceLimitExceeded" => format!(
                    "You have requested more instances than your current instance limit allows for the specified instance type {t}."
                ),
                "RequestLimitExceeded" => "Request limit exceeded.".to_string(),
                other => format!("{other} for {t}"),
            };
            // EC2 answers throttling with 503, every other refusal with 400.
            let status = if code == "RequestLimitExceeded" {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::BAD_REQUEST
            };
            return ec2_error(status, code, &message);
        }
    }
    let (response, answer) = forward(&s, method, &uri, &headers, body).await;
    let Some(answer) = answer else {
        return response;
    };
    {
        let mut b = s.behaviour.lock().unwrap();
        b.launches += 1;
        let now = std::time::Instant::now();
        for id in instance_ids(&answer) {
            b.launched_at.insert(id, now);
        }
        if let Some(token) = token {
            b.tokens.insert(token, (params, answer.clone()));
        }
    }
    drop(response);
    lose_or(&s, answer)
}

/// The answer, unless it is to be lost (applied, answer dropped: what a
/// timed-out call leaves behind; the SDK's own retries meet it too).
fn lose_or(s: &Shared, answer: Bytes) -> Response {
    let mut b = s.behaviour.lock().unwrap();
    if b.lose_answers > 0 {
        b.lose_answers -= 1;
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("content-type", "text/plain")],
            "connection reset (answer lost, injected)",
        )
            .into_response();
    }
    (
        StatusCode::OK,
        [("content-type", "text/xml;charset=UTF-8")],
        answer,
    )
        .into_response()
}

/// Forward to moto; the body of a 200 answer is returned beside the response.
async fn forward(
    s: &Shared,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> (Response, Option<Bytes>) {
    match super::proxy::relay(&s.http, &s.upstream, method, uri, headers, body, "text/xml").await {
        Ok((status, content_type, bytes)) => {
            let ok = status == StatusCode::OK;
            (
                (status, [("content-type", content_type)], bytes.clone()).into_response(),
                ok.then_some(bytes),
            )
        }
        Err(e) => ((StatusCode::BAD_GATEWAY, e).into_response(), None),
    }
}

/// `<instanceId>…</instanceId>` values of an EC2 XML answer.
fn instance_ids(xml: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(xml);
    text.split("<instanceId>")
        .skip(1)
        .filter_map(|rest| {
            rest.split_once("</instanceId>")
                .map(|(id, _)| id.to_string())
        })
        .collect()
}

/// DescribeInstances as EC2 answers it right after a launch: the newest
/// instances are not there yet.
async fn describe(
    s: &Shared,
    form: &BTreeMap<String, String>,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    // EC2's rules for MaxResults (DescribeInstances reference): 5 to 1000,
    // and never together with instance ids.
    let by_id = form.keys().any(|k| k.starts_with("InstanceId."));
    if let Some(max) = form.get("MaxResults") {
        if by_id {
            return ec2_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterCombination",
                "The parameter instancesSet cannot be used with the parameter maxResults",
            );
        }
        if !max.parse::<u32>().is_ok_and(|n| (5..=1000).contains(&n)) {
            return ec2_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValue",
                &format!(
                    "Value ( {max} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000"
                ),
            );
        }
    }
    let page_size = s.behaviour.lock().unwrap().page_size;
    let body = match page_size {
        Some(n) if !by_id => {
            let text = String::from_utf8_lossy(&body);
            let mut fields: Vec<String> = text
                .split('&')
                .filter(|f| !f.starts_with("MaxResults="))
                .map(String::from)
                .collect();
            fields.push(format!("MaxResults={n}"));
            Bytes::from(fields.join("&"))
        }
        _ => body,
    };
    let hidden: Vec<String> = {
        let b = s.behaviour.lock().unwrap();
        let mut hidden: Vec<String> = b
            .launched_at
            .iter()
            .filter(|(_, at)| at.elapsed() < b.invisible_for)
            .map(|(id, _)| id.clone())
            .collect();
        hidden.extend(b.forgotten());
        hidden
    };
    if let Some(id) = form
        .iter()
        .filter(|(k, _)| k.starts_with("InstanceId."))
        .map(|(_, v)| v)
        .find(|v| hidden.contains(v))
    {
        return ec2_error(
            StatusCode::BAD_REQUEST,
            "InvalidInstanceID.NotFound",
            &format!("The instance ID '{id}' does not exist"),
        );
    }
    let (response, answer) = forward(s, method, uri, headers, body).await;
    match answer {
        Some(xml) if !hidden.is_empty() => (
            StatusCode::OK,
            [("content-type", "text/xml;charset=UTF-8")],
            without_reservations_of(&String::from_utf8_lossy(&xml), &hidden),
        )
            .into_response(),
        _ => response,
    }
}

/// The answer with every reservation that holds one of `hidden` removed
/// (a launch is one reservation, so its instances appear together).
fn without_reservations_of(xml: &str, hidden: &[String]) -> String {
    let (Some(open), Some(close)) = (xml.find("<reservationSet>"), xml.rfind("</reservationSet>"))
    else {
        return xml.to_string();
    };
    let inner_start = open + "<reservationSet>".len();
    let inner = &xml[inner_start..close];
    let mut kept = String::new();
    let mut depth = 0usize;
    let mut item_start = None;
    let mut i = 0;
    while i < inner.len() {
        let rest = &inner[i..];
        if rest.starts_with("<item>") {
            if depth == 0 {
                item_start = Some(i);
            }
            depth += 1;
            i += "<item>".len();
        } else if rest.starts_with("</item>") {
            depth = depth.saturating_sub(1);
            i += "</item>".len();
            if depth == 0
                && let Some(start) = item_start.take()
            {
                let item = &inner[start..i];
                if !hidden
                    .iter()
                    .any(|id| item.contains(&format!("<instanceId>{id}</instanceId>")))
                {
                    kept.push_str(item);
                }
            }
        } else {
            if depth == 0 {
                kept.push_str(&rest[..rest.chars().next().map_or(1, char::len_utf8)]);
            }
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    format!("{}{kept}{}", &xml[..inner_start], &xml[close..])
}
