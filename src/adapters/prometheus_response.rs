//! Prometheus HTTP API answers (`/api/v1/query`, `/api/v1/query_range`)
//! parsed into samples. Pure and total: any input gives a value or an
//! [`AnswerError`], never a panic (it is fuzzed).

use crate::ports::Timestamp;
use serde::Deserialize;
use std::collections::BTreeMap;

pub type Labels = BTreeMap<String, String>;

#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: Labels,
    /// (time, value); value may be NaN or ±Inf, as Prometheus says it.
    pub samples: Vec<(Timestamp, f64)>,
}

/// Why an answer holds no series. The caller branches on the kind: a
/// refusal is Prometheus's own explanation of an HTTP error and is kept
/// beside the status; a malformed body says nothing the status does not.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// A well-formed answer whose status is not `success`.
    #[error("Prometheus answered status \"{status}\": {detail}")]
    Refused { status: String, detail: String },
    /// Not an answer of the HTTP API, or one with a part that does not parse.
    #[error("{0}")]
    Malformed(String),
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct RawSeries {
    #[serde(default)]
    metric: Labels,
    #[serde(default)]
    value: Option<(serde_json::Value, String)>,
    #[serde(default)]
    values: Option<Vec<(serde_json::Value, String)>>,
}

fn sample(raw: &(serde_json::Value, String)) -> Result<(Timestamp, f64), String> {
    let secs = raw
        .0
        .as_f64()
        .ok_or_else(|| format!("sample time {} is not a number", raw.0))?;
    if !secs.is_finite() || secs.abs() > 1e12 {
        return Err(format!("sample time {secs} is out of range"));
    }
    let value = match raw.1.as_str() {
        "NaN" => f64::NAN,
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        text => text
            .parse::<f64>()
            .map_err(|_| format!("sample value \"{text}\" is not a number"))?,
    };
    Ok((Timestamp((secs * 1000.0).round() as i64), value))
}

/// Every series of a query answer (vector, matrix or scalar).
pub fn parse(body: &[u8]) -> Result<Vec<Series>, AnswerError> {
    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|e| AnswerError::Malformed(format!("not a Prometheus API answer: {e}")))?;
    if envelope.status != "success" {
        return Err(AnswerError::Refused {
            status: envelope.status,
            detail: format!(
                "{}{}",
                envelope
                    .error_type
                    .map(|t| format!("{t}: "))
                    .unwrap_or_default(),
                envelope.error.unwrap_or_default()
            ),
        });
    }
    let data = envelope
        .data
        .ok_or_else(|| AnswerError::Malformed("the answer has no data".to_string()))?;
    series(data).map_err(AnswerError::Malformed)
}

/// The series of a successful answer's `data`.
fn series(data: Data) -> Result<Vec<Series>, String> {
    match data.result_type.as_str() {
        "scalar" => {
            let raw: (serde_json::Value, String) =
                serde_json::from_value(data.result).map_err(|e| format!("bad scalar: {e}"))?;
            Ok(vec![Series {
                labels: Labels::new(),
                samples: vec![sample(&raw)?],
            }])
        }
        "vector" | "matrix" => {
            let raw: Vec<RawSeries> = serde_json::from_value(data.result)
                .map_err(|e| format!("bad {}: {e}", data.result_type))?;
            raw.into_iter()
                .map(|s| {
                    let samples = match (&s.value, &s.values) {
                        (Some(v), _) => vec![sample(v)?],
                        (None, Some(vs)) => vs.iter().map(sample).collect::<Result<_, _>>()?,
                        (None, None) => return Err("a series without samples".to_string()),
                    };
                    Ok(Series {
                        labels: s.metric,
                        samples,
                    })
                })
                .collect()
        }
        other => Err(format!("unexpected result type \"{other}\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_scalars_and_matrices() {
        let v = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"node":"a"},"value":[1700000000.5,"42.5"]}]}}"#;
        let s = parse(v).unwrap();
        assert_eq!(s[0].labels.get("node").map(String::as_str), Some("a"));
        assert_eq!(s[0].samples, vec![(Timestamp(1_700_000_000_500), 42.5)]);
        let sc =
            br#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"3"]}}"#;
        assert_eq!(parse(sc).unwrap()[0].samples[0].1, 3.0);
        let m = br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,"NaN"]]}]}}"#;
        let s = parse(m).unwrap();
        assert_eq!(s[0].samples.len(), 2);
        assert!(s[0].samples[1].1.is_nan());
    }

    #[test]
    fn errors_are_values() {
        for bad in [
            &b"garbage"[..],
            br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
            br#"{"status":"success"}"#,
            br#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"abc"]}]}}"#,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":["t","1"]}]}}"#,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}}"#,
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let e = parse(br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#)
            .unwrap_err();
        assert_eq!(
            e,
            AnswerError::Refused {
                status: "error".into(),
                detail: "bad_data: parse error".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "Prometheus answered status \"error\": bad_data: parse error"
        );
        assert!(matches!(parse(b"garbage"), Err(AnswerError::Malformed(_))));
    }
}
