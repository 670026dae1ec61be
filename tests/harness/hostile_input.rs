//! Hostile input: property tests over the config parser, the
//! Prometheus answer parser and the Kubernetes object conversion. Any input
//! yields a value or an error; none panics. The committed fuzz seeds
//! (fuzz/seeds, a slice of a minimised libFuzzer corpus) and the local corpus
//! (fuzz/corpus, when scripts/fuzz.sh has run here) are replayed through the
//! same entry points the cargo-fuzz targets use.

use k3s_autoscaler::harness::fuzz_entry;
use proptest::prelude::*;
use serde_json::{Value, json};

/// JSON values of any shape, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        "[a-zA-Z0-9 .:/+-]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("NaN"),
            Just("+Inf"),
            Just("1930m"),
            Just("7Gi"),
            Just("success"),
            Just("vector")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("status".to_string()),
                    Just("data".to_string()),
                    Just("result".to_string()),
                    Just("resultType".to_string()),
                    Just("value".to_string()),
                    Just("values".to_string()),
                    Just("metric".to_string()),
                    Just("metadata".to_string()),
                    Just("spec".to_string()),
                    Just("name".to_string()),
                    Just("allocatable".to_string()),
                    Just("conditions".to_string()),
                    "[a-z]{1,8}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// TOML-ish text: real keys and sections with values of every type.
fn tomlish() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("min_workers"),
        Just("max_workers"),
        Just("cpu_up_percent"),
        Just("cpu_down_percent"),
        Just("idle_for"),
        Just("lease"),
        Just("timeout"),
        Just("interval"),
        Just("name"),
        Just("theme"),
        Just("instance_types"),
        Just("unknown_key"),
    ];
    let section = prop_oneof![
        Just("[policy]"),
        Just("[lock]"),
        Just("[drain]"),
        Just("[engine]"),
        Just("[cluster]"),
        Just("[ui]"),
        Just("[ui.keys]"),
        Just("[nope]"),
        Just(""),
    ];
    let value = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f}")),
        "\"-?[0-9]{0,4}(ms|s|m|h|d|x)?\"",
        "\"[a-z ]{0,6}\"",
        Just("[\"t3.large\"]".to_string()),
        Just("true".to_string()),
        Just("= =".to_string()),
    ];
    prop::collection::vec((section, key, value), 0..8).prop_map(|lines| {
        lines
            .into_iter()
            .map(|(s, k, v)| format!("{s}\n{k} = {v}\n"))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn config_text_never_panics(text in tomlish()) {
        fuzz_entry::config(text.as_bytes());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        fuzz_entry::config(&bytes);
        fuzz_entry::prometheus(&bytes);
        fuzz_entry::kube_objects(&bytes);
    }

    #[test]
    fn prometheus_answers_of_any_shape_never_panic(value in any_json()) {
        fuzz_entry::prometheus(value.to_string().as_bytes());
        let wrapped = json!({"status": "success", "data": {"resultType": "vector", "result": value}});
        fuzz_entry::prometheus(wrapped.to_string().as_bytes());
    }

    #[test]
    fn kubernetes_objects_of_any_shape_never_panic(meta in any_json(), spec in any_json(), status in any_json()) {
        let object = json!({"metadata": meta, "spec": spec, "status": status});
        fuzz_entry::kube_objects(object.to_string().as_bytes());
        let node = json!({
            "metadata": {"name": "n"},
            "spec": {"providerID": spec},
            "status": {"allocatable": {"cpu": status, "memory": "1Gi"}, "conditions": []},
        });
        fuzz_entry::kube_objects(node.to_string().as_bytes());
    }

    #[test]
    fn quantities_of_any_text_never_panic(text in ".{0,24}") {
        fuzz_entry::kube_objects(text.as_bytes());
    }
}

#[test]
fn the_fuzz_corpus_replays_cleanly() {
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut seeds = 0;
    for (target, run) in [
        ("config", fuzz_entry::config as fn(&[u8])),
        ("prometheus", fuzz_entry::prometheus),
        ("kube_objects", fuzz_entry::kube_objects),
    ] {
        for dir in ["seeds", "corpus"] {
            // fuzz/corpus is local (git-ignored); fuzz/seeds is committed.
            let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
                assert_eq!(dir, "corpus", "fuzz/seeds/{target} is missing");
                continue;
            };
            for entry in entries {
                let bytes = std::fs::read(entry.unwrap().path()).unwrap();
                run(&bytes);
                seeds += usize::from(dir == "seeds");
            }
        }
    }
    assert!(seeds >= 3 * 50, "only {seeds} committed seed entries");
}
