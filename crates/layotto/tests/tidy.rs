//! Architecture rules from DESIGN.md, checked on the manifests: the contracts depend on nothing
//! of ours; components never depend on the edge; only the edge (and the binary, the SDK and
//! the generated proto crate) depends on tonic or axum.
#![allow(missing_docs)]

use std::path::Path;

fn deps(krate: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("Cargo.toml");
    let text = std::fs::read_to_string(&path).expect("read manifest");
    let mut in_deps = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && let Some((name, _)) = line.split_once('=') {
            out.push(name.trim().to_owned());
        }
    }
    out
}

#[test]
fn contracts_depend_on_nothing_of_ours() {
    let d = deps("core");
    assert!(d.iter().all(|n| !n.starts_with("layotto")), "{d:?}");
}

#[test]
fn only_the_edge_knows_transports() {
    for krate in ["core", "components", "config", "runtime"] {
        let d = deps(krate);
        for forbidden in [
            "tonic",
            "axum",
            "prost",
            "layotto-proto",
            "layotto-grpc",
            "layotto-http",
        ] {
            assert!(
                !d.iter().any(|n| n == forbidden),
                "{krate} depends on {forbidden}"
            );
        }
    }
}
