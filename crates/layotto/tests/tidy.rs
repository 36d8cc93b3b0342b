//! The rules ARCHITECTURE.md states, checked on the manifests and the sources: the contracts
//! depend on nothing of ours; each backend crate depends on the contracts only; config and the
//! runtime never name a backend; only the edges (and the binary, the SDK and the generated
//! proto crate) know transports; no source file outgrows ~800 lines of non-test code; the code
//! map names every crate.
#![allow(missing_docs)]

use std::path::{Path, PathBuf};

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every crate directory under `crates/` (backend crates as `components/<family>`).
fn all_crates() -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(crates_dir()).expect("crates/") {
        let e = e.expect("entry");
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "components" {
            for f in std::fs::read_dir(e.path()).expect("crates/components") {
                let f = f.expect("entry");
                if f.path().join("Cargo.toml").exists() {
                    out.push(format!("components/{}", f.file_name().to_string_lossy()));
                }
            }
        } else if e.path().join("Cargo.toml").exists() {
            out.push(name);
        }
    }
    out.sort();
    out
}

fn backend_crates() -> Vec<String> {
    all_crates()
        .into_iter()
        .filter(|c| c.starts_with("components/"))
        .collect()
}

/// The names in `[dependencies]` of `krate` (dev-dependencies are free).
fn deps(krate: &str) -> Vec<String> {
    let path = crates_dir().join(krate).join("Cargo.toml");
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

fn ours(krate: &str) -> Vec<String> {
    deps(krate)
        .into_iter()
        .filter(|n| n.starts_with("layotto"))
        .collect()
}

#[test]
fn contracts_depend_on_nothing_of_ours() {
    assert_eq!(ours("core"), Vec::<String>::new());
}

#[test]
fn backend_crates_depend_on_the_contracts_only() {
    let backends = backend_crates();
    assert!(backends.len() >= 4, "backend crates: {backends:?}");
    for b in backends {
        assert_eq!(ours(&b), ["layotto-core"], "{b}");
    }
}

#[test]
fn config_dapr_wire_and_runtime_never_name_a_backend() {
    assert_eq!(ours("config"), ["layotto-core"]);
    let wire = ours("dapr-wire");
    assert!(
        wire.iter().all(|d| d == "layotto-core"),
        "dapr-wire: {wire:?}"
    );
    let rt = ours("runtime");
    assert!(
        rt.iter()
            .all(|d| d == "layotto-core" || d == "layotto-config"),
        "runtime: {rt:?}"
    );
    // Nor in its sources: no backend crate, no backend type string.
    for file in sources(&crates_dir().join("runtime/src")) {
        let text = std::fs::read_to_string(&file).expect("read");
        for word in ["layotto_components", "redis", "Redis"] {
            assert!(
                !text.contains(word),
                "{} names a backend ({word})",
                file.display()
            );
        }
    }
}

#[test]
fn only_the_edge_knows_transports() {
    let mut checked = vec!["core", "config", "runtime", "dapr-wire"]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    let backends = backend_crates();
    checked.extend(backends.iter().cloned());
    for krate in checked {
        let d = deps(&krate);
        for forbidden in [
            "tonic",
            "axum",
            "prost",
            "layotto-proto",
            "layotto-grpc",
            "layotto-http",
        ] {
            // A backend may store protobuf (daprd's etcd v2 state envelope is one): prost is
            // its encoding there, not a transport.
            if forbidden == "prost" && backends.contains(&krate) {
                continue;
            }
            assert!(
                !d.iter().any(|n| n == forbidden),
                "{krate} depends on {forbidden}"
            );
        }
    }
}

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(sources(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// Lines of non-test code: up to the first `#[cfg(test)]`; files that are tests throughout
/// (`tests.rs`, `*_tests.rs`, integration tests) do not count.
fn code_lines(text: &str) -> usize {
    text.lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .filter(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with("//")
        })
        .count()
}

#[test]
fn no_source_file_outgrows_800_lines_of_code() {
    let mut too_long = Vec::new();
    for krate in all_crates() {
        for file in sources(&crates_dir().join(&krate).join("src")) {
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name == "tests.rs" || name.ends_with("_tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&file).expect("read");
            let n = code_lines(&text);
            if n > 800 {
                too_long.push(format!("{} ({n} lines)", file.display()));
            }
        }
    }
    assert!(too_long.is_empty(), "split these: {too_long:?}");
}

#[test]
fn the_code_map_names_every_crate() {
    let map = std::fs::read_to_string(crates_dir().join("../ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md at the repository root");
    for krate in all_crates() {
        assert!(
            map.contains(&format!("crates/{krate}")),
            "ARCHITECTURE.md does not describe crates/{krate}"
        );
    }
}
