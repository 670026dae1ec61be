//! The Prometheus text exposition format (version 0.0.4), written by hand:
//! the handful of series the engine exports do not justify a client crate
//! and its build time on 2 cores.

use std::collections::BTreeMap;
use std::fmt::Write;

/// Upper bounds (seconds) of the phase-duration histogram: from a quick
/// cordon to a drain that runs into its 10-minute timeout and beyond.
pub const PHASE_BUCKETS: [f64; 11] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
];

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// Cumulative counts per bucket of `PHASE_BUCKETS`.
    pub buckets: [u64; PHASE_BUCKETS.len()],
    pub count: u64,
    pub sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        for (bound, n) in PHASE_BUCKETS.iter().zip(self.buckets.iter_mut()) {
            if seconds <= *bound {
                *n += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// Label values may hold any text; the format reserves `\`, `"` and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// Numbers as Prometheus parses them (`+Inf`, `NaN`, plain decimals).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    pub fn scalar(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.header(name, kind, help);
        let _ = writeln!(self.out, "{name} {}", number(value));
    }

    /// One family keyed by a single label; `always` lists label values to
    /// export even at zero, so a query never finds the series missing.
    pub fn labelled(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        label: &str,
        values: &BTreeMap<String, f64>,
        always: &[&str],
    ) {
        self.header(name, kind, help);
        let mut all: BTreeMap<&str, f64> = always.iter().map(|k| (*k, 0.0)).collect();
        for (k, v) in values {
            all.insert(k, *v);
        }
        for (k, v) in all {
            let _ = writeln!(self.out, "{name}{} {}", labels(&[(label, k)]), number(v));
        }
    }

    pub fn pairs(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        keys: (&str, &str),
        values: &BTreeMap<(String, String), f64>,
    ) {
        self.header(name, kind, help);
        for ((a, b), v) in values {
            let _ = writeln!(
                self.out,
                "{name}{} {}",
                labels(&[(keys.0, a), (keys.1, b)]),
                number(*v)
            );
        }
    }

    pub fn histograms(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: &BTreeMap<String, Histogram>,
    ) {
        let keyed: BTreeMap<Vec<(&str, String)>, Histogram> = values
            .iter()
            .map(|(k, h)| (vec![(label, k.clone())], h.clone()))
            .collect();
        self.histograms_by(name, help, &keyed);
    }

    /// Histograms keyed by several labels (each key's pairs in order).
    pub fn histograms_by(
        &mut self,
        name: &str,
        help: &str,
        values: &BTreeMap<Vec<(&str, String)>, Histogram>,
    ) {
        self.header(name, "histogram", help);
        for (key, h) in values {
            let with = |extra: Option<(&str, &str)>| {
                let mut pairs: Vec<(&str, &str)> =
                    key.iter().map(|(k, v)| (*k, v.as_str())).collect();
                pairs.extend(extra);
                labels(&pairs)
            };
            for (bound, n) in PHASE_BUCKETS.iter().zip(h.buckets.iter()) {
                let le = number(*bound);
                let _ = writeln!(self.out, "{name}_bucket{} {n}", with(Some(("le", &le))));
            }
            let _ = writeln!(
                self.out,
                "{name}_bucket{} {}",
                with(Some(("le", "+Inf"))),
                h.count
            );
            let _ = writeln!(self.out, "{name}_sum{} {}", with(None), number(h.sum));
            let _ = writeln!(self.out, "{name}_count{} {}", with(None), h.count);
        }
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut h = Histogram::default();
        h.observe(3.0);
        h.observe(45.0);
        h.observe(7200.0);
        assert_eq!(h.buckets, [0, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2]);
        assert_eq!((h.count, h.sum), (3, 7248.0));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut e = Exposition::default();
        let values = BTreeMap::from([("a\"b\\c\nd".to_string(), 1.0)]);
        e.labelled("m", "gauge", "help", "l", &values, &[]);
        assert!(
            e.finish().contains(r#"m{l="a\"b\\c\nd"} 1"#),
            "escaped label"
        );
    }
}
