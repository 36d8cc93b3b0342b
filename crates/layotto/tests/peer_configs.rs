//! Every config file Layotto ships (`../shared/peers/layotto/configs`, unchanged) as a new user
//! would try it: `layotto validate -c FILE` either accepts it, or refuses it only for parts whose
//! work has not landed yet, each named ("... is not supported yet"). Nothing is ignored
//! silently: the MOSN parts without effect come back as warnings.
#![allow(missing_docs)]

mod support;

use std::path::PathBuf;

use support::run_cli;

fn peer_configs() -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peers/layotto/configs");
    assert!(
        dir.is_dir(),
        "Layotto's config files are expected at {} (the shared peers folder beside the project)",
        dir.display()
    );
    dir
}

/// Problems that are not "not supported yet" but upstream's own faults, by file: each is
/// stated in the README's Layotto section.
const UPSTREAM_FAULTS: [(&str, &str); 1] = [(
    // Layotto's file section is "file"; this file says "files", which Layotto never reads.
    "config_file_tencentcloud_oss.json",
    "unknown section \"files\"",
)];

/// Files that must validate today.
const MUST_VALIDATE: [&str; 10] = [
    "config.json",
    "config_standalone.json",
    "config_redis.json",
    "config_uds.json",
    "runtime_config.json",
    "config_ref_example.json",
    "config_snowflake.json",
    "config_zookeeper.json",
    "config_integrate_test.json",
    "config_mongo.json",
];

#[test]
fn every_layotto_config_validates_or_names_what_is_not_supported_yet() {
    let dir = peer_configs();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read configs")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "found {} files", files.len());
    let mut report = Vec::new();
    for file in &files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let (code, out, err) = run_cli(&["validate", "-c", &file.to_string_lossy()]);
        if code == 0 {
            assert!(out.contains("OK"), "{name}: {out}");
            report.push(format!("{name}: OK"));
            continue;
        }
        assert_eq!(code, 64, "{name}: {err}");
        assert!(
            !MUST_VALIDATE.contains(&name),
            "{name} must validate unchanged:\n{err}"
        );
        let problems: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("  "))
            .map(str::trim)
            .collect();
        assert!(
            !problems.is_empty(),
            "{name}: exit 64 without a problem:\n{err}"
        );
        for p in &problems {
            let upstream = UPSTREAM_FAULTS
                .iter()
                .any(|(f, words)| *f == name && p.contains(words));
            assert!(
                p.contains("is not supported yet") || upstream,
                "{name}: a problem other than 'not supported yet':\n  {p}"
            );
        }
        report.push(format!(
            "{name}: {} part(s) not supported yet",
            problems.len()
        ));
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn what_has_no_effect_is_said_not_skipped() {
    let file = peer_configs().join("runtime_config.json");
    let (_, _, err) = run_cli(&["validate", "-c", &file.to_string_lossy()]);
    assert!(
        err.lines()
            .any(|l| l.starts_with("warning:") && l.contains("$.dynamic_resources")),
        "no warning naming $.dynamic_resources:\n{err}"
    );
    // Served now, so not warned about: the Prometheus sink, the grpc_metric filter and
    // SOFATracer's stdout exporter.
    for part in ["$.metrics", "grpc_metric", "$.tracing"] {
        assert!(
            !err.lines().any(|l| l.contains(part)),
            "{part} is served, not warned about:\n{err}"
        );
    }
    let oss = peer_configs().join("config_oss.json");
    let (code, _, err) = run_cli(&["validate", "-c", &oss.to_string_lossy()]);
    assert_eq!(code, 64, "an oss section is not silently dropped:\n{err}");
    assert!(
        err.contains("object storage (oss) API is not supported yet"),
        "{err}"
    );
}
