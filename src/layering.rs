//! The arrows of docs/architecture.md §1 ("Who may use whom") that the
//! compiler does not check. The engine and the ports are a crate of their
//! own (`crates/core`), so their rule is a build fact; the layers of this
//! crate share one namespace, and this test reads their sources for every
//! `crate::<layer>` path and fails on an arrow the table forbids.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each layer of this crate and the layers it must never name. Kept
/// beside the table in docs/architecture.md; a change to one is a change
/// to both.
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "adapters",
        &["app", "ui", "runtime", "sim", "harness", "cli"],
    ),
    (
        "sim",
        &["adapters", "runtime", "app", "ui", "harness", "cli"],
    ),
    ("runtime", &["sim", "harness", "cli"]),
    ("harness", &["adapters", "cli"]),
    ("app", &["runtime", "adapters", "sim", "harness", "cli"]),
    ("ui", &["runtime", "adapters", "sim", "harness", "cli"]),
    (
        "config",
        &["runtime", "adapters", "sim", "harness", "app", "ui", "cli"],
    ),
    (
        "rng",
        &[
            "runtime", "adapters", "sim", "harness", "app", "ui", "cli", "config", "engine",
            "ports",
        ],
    ),
];

/// Arrows the table forbids that one file may still draw, and why: each
/// is a test, or a test entry point, looking at another layer's output.
const ALLOWED: &[(&str, &str, &str)] = &[
    (
        "sim/checker_tests.rs",
        "harness",
        "the checker's tests run the demo's own world settings",
    ),
    (
        "sim/facade/quantity.rs",
        "adapters",
        "its tests parse every canonical form the façade prints with the adapter's parser",
    ),
    (
        "harness/fuzz_entry.rs",
        "adapters",
        "the fuzz entry points are the adapters' parsers",
    ),
];

/// The first path segment after each `crate::` in `source`, including each
/// member of a `crate::{a, b::c}` group.
fn named_layers(source: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = BTreeSet::new();
    for (at, _) in source.match_indices("crate::") {
        // `k3s_autoscaler_core::` and `$crate::` are not this crate's paths.
        let before = source[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &source[at + "crate::".len()..];
        match rest.strip_prefix('{') {
            Some(group) => {
                // Top-level members only: `crate::{sim::{a, b}, ui}` names sim and ui.
                let mut depth = 0usize;
                let mut start = true;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => start = true,
                        c if start && !c.is_whitespace() => {
                            found.insert(ident(&group[i..]));
                            start = false;
                        }
                        _ => {}
                    }
                }
            }
            None => {
                found.insert(ident(rest));
            }
        }
    }
    found.remove("");
    found
}

/// Every `.rs` file of a layer: `src/<layer>.rs` and everything under
/// `src/<layer>/`.
fn layer_files(src: &Path, layer: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let single = src.join(format!("{layer}.rs"));
    if single.is_file() {
        files.push(single);
    }
    let mut dirs = vec![src.join(layer)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn no_layer_names_one_the_architecture_forbids() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    let mut used = BTreeSet::new();
    for (layer, forbidden) in FORBIDDEN {
        let files = layer_files(&src, layer);
        assert!(!files.is_empty(), "layer {layer} has no source under src/");
        for file in files {
            let text = std::fs::read_to_string(&file).expect("a source file reads");
            for named in named_layers(&text) {
                if !forbidden.contains(&named.as_str()) {
                    continue;
                }
                let allowance = ALLOWED
                    .iter()
                    .position(|(f, l, _)| file.ends_with(f) && *l == named.as_str());
                if let Some(i) = allowance {
                    used.insert(i);
                } else {
                    broken.push(format!("{} ({layer}) uses crate::{named}", file.display()));
                }
            }
        }
    }
    // An allowance nothing needs any more would let the arrow back in unseen.
    for (i, (file, layer, _)) in ALLOWED.iter().enumerate() {
        if !used.contains(&i) {
            broken.push(format!(
                "src/{file} no longer uses crate::{layer}: drop its allowance"
            ));
        }
    }
    assert!(
        broken.is_empty(),
        "arrows docs/architecture.md forbids:\n{}",
        broken.join("\n")
    );
}

#[test]
fn paths_are_read_the_way_rust_writes_them() {
    let text = "use crate::ports::{A, B};\nuse crate::{sim::{x, y}, ui::View};\n\
                let c = crate::runtime::go(); use k3s_autoscaler_core::engine; $crate::x";
    let named: Vec<String> = named_layers(text).into_iter().collect();
    assert_eq!(named, ["ports", "runtime", "sim", "ui"]);
}

/// The core crate is pure because of what it cannot link: its dependency
/// list is the rule, so a new entry has to come through here.
#[test]
fn the_core_crate_depends_on_nothing_that_performs_io() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/core/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("crates/core/Cargo.toml reads");
    let parsed: toml::Table = text.parse().expect("crates/core/Cargo.toml parses");
    // Target-specific tables too: `[target.'cfg(unix)'.dependencies]`.
    let sections = ["dependencies", "build-dependencies"];
    let mut tables: Vec<&toml::Table> = sections
        .iter()
        .filter_map(|section| parsed.get(*section).and_then(|d| d.as_table()))
        .collect();
    for target in parsed
        .get("target")
        .and_then(|t| t.as_table())
        .into_iter()
        .flat_map(|t| t.values())
        .filter_map(|t| t.as_table())
    {
        tables.extend(
            sections
                .iter()
                .filter_map(|section| target.get(*section).and_then(|d| d.as_table())),
        );
    }
    let deps: BTreeSet<&str> = tables
        .iter()
        .flat_map(|d| d.keys().map(String::as_str))
        .collect();
    assert_eq!(
        deps,
        BTreeSet::from(["async-trait", "serde", "thiserror"]),
        "the engine and the ports may not depend on a crate that can perform IO \
         or read the clock (docs/architecture.md §1)"
    );
}

/// What the core crate cannot link it could still reach through `std`:
/// the clock, the file system, the network, threads, processes and the
/// environment. None of it belongs in the engine or the ports.
#[test]
fn the_core_crate_reaches_no_io_through_std() {
    const IO: &[&str] = &[
        "SystemTime",
        "Instant",
        "std::fs",
        "std::net",
        "std::thread",
        "std::process",
        "std::env",
        "std::io",
        "unsafe",
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/core/src");
    let mut files = layer_files(&root, "engine");
    files.extend(layer_files(&root, "ports"));
    files.push(root.join("lib.rs"));
    assert!(
        files.len() > 10,
        "the core crate's sources are found: {files:?}"
    );
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a source file reads");
        for word in IO {
            if text.contains(word) {
                found.push(format!("{} mentions {word}", file.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "IO in the core crate:\n{}",
        found.join("\n")
    );
}
