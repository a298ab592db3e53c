//! The crate boundaries ARCHITECTURE.md names, checked: each crate's
//! `[dependencies]` may name only the yard crates its layer may see. A
//! change that reaches past a boundary fails here, not in review.

#![allow(clippy::unwrap_used)]

use std::path::Path;

/// Which yard crates each library crate may depend on (tests and benches
/// may use more, through `[dev-dependencies]`).
const ALLOWED: &[(&str, &[&str])] = &[
    ("yard-core", &[]),
    // The all-in-one supervisor stands apart: it runs the yard as a service.
    ("yard-aio", &[]),
    ("yard-relay", &[]),
    ("yard-forge", &[]),
    ("yard-api", &["yard-core"]),
    ("yard-client", &["yard-api", "yard-core"]),
    ("yard-store", &["yard-core"]),
    ("yard-engine", &["yard-core"]),
    ("yard-git", &[]),
    (
        "yard-services",
        &[
            "yard-core",
            "yard-engine",
            "yard-forge",
            "yard-git",
            "yard-store",
        ],
    ),
    // The API boundary: the server and MCP see only the services.
    ("yard-mcp", &["yard-api", "yard-core", "yard-services"]),
    (
        "yard-server",
        &[
            "yard-api",
            "yard-core",
            "yard-git",
            "yard-mcp",
            "yard-services",
        ],
    ),
    (
        "yard-daemon",
        &[
            "yard-core",
            "yard-engine",
            "yard-server",
            "yard-services",
            "yard-store",
        ],
    ),
    ("yard-testkit", &["yard-core", "yard-engine"]),
];

/// Who may talk to what outside the yard: only the engine crate speaks the
/// Docker API, and only the store speaks SQL (besides the test kit, which
/// builds images, sweeps resources and makes throwaway databases).
const OUTSIDE: &[(&str, &[&str])] = &[
    ("bollard", &["yard-engine", "yard-testkit"]),
    ("sqlx", &["yard-store", "yard-testkit"]),
];

/// The names `krate`'s `[dependencies]` lists.
fn dependencies(krate: &str) -> Vec<String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let parsed: toml::Table = text.parse().unwrap();
    parsed
        .get("dependencies")
        .and_then(|d| d.as_table())
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default()
}

fn yard_dependencies(krate: &str) -> Vec<String> {
    dependencies(krate)
        .into_iter()
        .filter(|k| k.starts_with("yard-"))
        .collect()
}

#[test]
fn every_crate_depends_only_on_the_layers_below_it() {
    let mut crossings = Vec::new();
    for (krate, allowed) in ALLOWED {
        for dependency in yard_dependencies(krate) {
            if !allowed.contains(&dependency.as_str()) {
                crossings.push(format!("{krate} depends on {dependency}"));
            }
        }
    }
    assert!(
        crossings.is_empty(),
        "boundaries crossed (see ARCHITECTURE.md): {crossings:#?}"
    );
}

#[test]
fn only_the_engine_speaks_docker_and_only_the_store_speaks_sql() {
    let mut crossings = Vec::new();
    for krate in ALLOWED.iter().map(|(k, _)| *k).chain(["yard"]) {
        for dependency in dependencies(krate) {
            if let Some((_, allowed)) = OUTSIDE.iter().find(|(d, _)| *d == dependency)
                && !allowed.contains(&krate)
            {
                crossings.push(format!("{krate} depends on {dependency}"));
            }
        }
    }
    assert!(
        crossings.is_empty(),
        "boundaries crossed (see ARCHITECTURE.md): {crossings:#?}"
    );
}

#[test]
fn every_crate_in_the_workspace_has_a_rule() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for entry in std::fs::read_dir(crates).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name == "yard" {
            // The binary: the edge, which may use everything.
            continue;
        }
        assert!(
            ALLOWED.iter().any(|(krate, _)| *krate == name),
            "crate {name} has no rule in this test"
        );
    }
}
