//! `MetricsSource` on Prometheus's HTTP API (reqwest). One PromQL query per
//! signal, from the config. Every failure — refused connection, timeout,
//! HTTP error, an error answer, no data, NaN/Inf, a stale sample — is an
//! Unknown with its reason, never a number.

use super::prometheus_response::{AnswerError, Series, parse};
use crate::config::PrometheusConfig;
use crate::ports::{
    Clock, MetricsSource, PortError, PortResult, Reading, Sample, Signal, Timestamp,
    format_duration,
};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

enum Auth {
    None,
    Bearer(String),
    Basic { user: String, password: String },
}

pub struct PrometheusMetrics {
    http: reqwest::Client,
    base: String,
    config: PrometheusConfig,
    auth: Auth,
    clock: Arc<dyn Clock>,
}

impl PrometheusMetrics {
    /// Credentials are read here from the environment variables the config
    /// names; the config file never holds them.
    pub fn new(config: &PrometheusConfig, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let read_env = |name: &str| {
            std::env::var(name).map_err(|_| {
                format!("environment variable {name} (named in [prometheus]) is not set")
            })
        };
        let auth = match (
            &config.bearer_token_env,
            &config.basic_auth_user,
            &config.basic_auth_password_env,
        ) {
            (Some(env), _, _) => Auth::Bearer(read_env(env)?),
            (None, Some(user), Some(env)) => Auth::Basic {
                user: user.clone(),
                password: read_env(env)?,
            },
            (None, Some(_), None) => {
                return Err(
                    "prometheus.basic_auth_user needs prometheus.basic_auth_password_env".into(),
                );
            }
            _ => Auth::None,
        };
        let http = reqwest::Client::builder()
            .timeout(config.timeout.get())
            .connect_timeout(config.timeout.get())
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(PrometheusMetrics {
            http,
            base: config.url.trim_end_matches('/').to_string(),
            config: config.clone(),
            auth,
            clock,
        })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    fn query_for(&self, signal: Signal) -> &str {
        match signal {
            Signal::WorkerCpu => &self.config.cpu_query,
            Signal::UnschedulablePods => &self.config.unschedulable_query,
            Signal::ReadyWorkers => &self.config.ready_workers_query,
        }
    }

    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Vec<Series>, String> {
        let mut request = self.http.get(format!("{}{path}", self.base)).query(params);
        request = match &self.auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Basic { user, password } => request.basic_auth(user, Some(password)),
        };
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                format!(
                    "no answer within {}",
                    format_duration(self.config.timeout.get())
                )
            } else if e.is_connect() {
                format!("cannot connect to {}", self.base)
            } else {
                format!("request failed: {e}")
            }
        })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| {
            if e.is_timeout() {
                format!(
                    "no answer within {}",
                    format_duration(self.config.timeout.get())
                )
            } else {
                format!("reading the answer: {e}")
            }
        })?;
        let parsed = parse(&body);
        if !status.is_success() {
            // Prometheus explains 4xx/5xx in a JSON error body when it can.
            return Err(match parsed {
                Err(why @ AnswerError::Refused { .. }) => format!("HTTP {status}: {why}"),
                _ => format!("HTTP {status}"),
            });
        }
        parsed.map_err(|why| why.to_string())
    }

    /// One finite, fresh value from an instant query.
    fn single(&self, signal: Signal, series: Vec<Series>) -> Reading {
        let now = self.clock.now();
        match series.as_slice() {
            [] => Reading::unknown(format!("{}: no data (empty result)", signal.name())),
            [one] => match one.samples.last() {
                None => Reading::unknown(format!("{}: no sample", signal.name())),
                Some((at, value)) => Reading::Known {
                    value: *value,
                    at: *at,
                }
                .checked(now, self.config.max_staleness.get()),
            },
            many => Reading::unknown(format!(
                "{}: the query returned {} series where one was expected",
                signal.name(),
                many.len()
            )),
        }
    }
}

#[async_trait]
impl MetricsSource for PrometheusMetrics {
    async fn instant(&self, signal: Signal) -> Reading {
        match self
            .get(
                "/api/v1/query",
                &[("query", self.query_for(signal).to_string())],
            )
            .await
        {
            Ok(series) => match self.single(signal, series) {
                Reading::Unknown { reason } => Reading::unknown(prefixed(signal, reason)),
                known => known,
            },
            Err(why) => Reading::unknown(format!("{}: {why}", signal.name())),
        }
    }

    async fn node_cpu(&self) -> PortResult<BTreeMap<String, f64>> {
        let series = self
            .get(
                "/api/v1/query",
                &[("query", self.config.node_cpu_query.clone())],
            )
            .await
            .map_err(PortError::Unavailable)?;
        let now = self.clock.now();
        Ok(series
            .into_iter()
            .filter_map(|s| {
                let node = s
                    .labels
                    .get("node")
                    .or_else(|| s.labels.get("instance"))?
                    .clone();
                let (at, value) = *s.samples.last()?;
                (value.is_finite() && now.since(at) <= self.config.max_staleness.get())
                    .then_some((node, value))
            })
            .collect())
    }

    async fn range(
        &self,
        signal: Signal,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> PortResult<Vec<Sample>> {
        let secs = |t: Timestamp| format!("{:.3}", t.0 as f64 / 1000.0);
        let series = self
            .get(
                "/api/v1/query_range",
                &[
                    ("query", self.query_for(signal).to_string()),
                    ("start", secs(start)),
                    ("end", secs(end)),
                    ("step", format!("{}s", step.as_secs().max(1))),
                ],
            )
            .await
            .map_err(PortError::Unavailable)?;
        Ok(series
            .into_iter()
            .next()
            .map(|s| {
                s.samples
                    .into_iter()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(at, value)| Sample { at, value })
                    .collect()
            })
            .unwrap_or_default())
    }
}

fn prefixed(signal: Signal, reason: String) -> String {
    if reason.starts_with(signal.name()) {
        reason
    } else {
        format!("{}: {reason}", signal.name())
    }
}
