//! The command line: `validate` reports every problem at once; `start` refuses an invalid config
//! with exit code 64 before binding any port.
#![allow(missing_docs)]

mod support;

use serde_json::json;
use support::{free_port, layotto_config, run_cli};

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).expect("write");
    p.to_string_lossy().into_owned()
}

#[test]
fn validate_accepts_the_shipped_configs() {
    let (code, out, err) = run_cli(&["validate"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("OK"), "{out}");
    let shipped = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/config_standalone.json"
    );
    let (code, _, err) = run_cli(&["validate", "-c", shipped]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn malformed_json_names_file_and_position() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = write(&dir, "bad.json", "{\n  \"servers\": [\n    {,\n");
    let (code, _, err) = run_cli(&["validate", "-c", &f]);
    assert_eq!(code, 64);
    assert!(err.contains("bad.json") && err.contains("3:"), "{err}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = layotto_config(
        free_port(),
        free_port(),
        json!({
            "app": {"app_id": "a", "grpc_callback_port": 70000},
            "state": {"s1": {"type": "no-such-store"}},
            "lock": {"l1": {"type": "in-memory", "metadata": {"bogus": "1"}}},
            "sequencer": {"q": {"type": "in-memory", "biggerThan": {"k": "abc"}}},
            "unknown_section": {}
        }),
    );
    let f = write(&dir, "multi.json", &cfg.to_string());
    let (code, _, err) = run_cli(&["validate", "-c", &f]);
    assert_eq!(code, 64, "{err}");
    for needle in [
        "grpc_callback_port",
        "unknown_section",
        "no-such-store",
        "known types",
        "in-memory",
        "biggerThan",
    ] {
        assert!(err.contains(needle), "missing '{needle}' in:\n{err}");
    }
    assert!(
        err.contains("multi.json: $."),
        "problems carry file and JSON path:\n{err}"
    );
}

#[test]
fn unknown_metadata_keys_are_warnings() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = layotto_config(
        free_port(),
        free_port(),
        json!({"lock": {"l1": {"type": "in-memory", "metadata": {"bogus": "1"}}}}),
    );
    let f = write(&dir, "warn.json", &cfg.to_string());
    let (code, out, err) = run_cli(&["validate", "-c", &f]);
    assert_eq!(code, 0, "an unknown key is no error:\n{err}");
    assert!(out.contains("OK"), "{out}");
    assert!(
        err.contains("warning") && err.contains("'bogus'") && err.contains("warn.json: $."),
        "the warning names the key, file and path:\n{err}"
    );
    let (code, _, err) = run_cli(&["validate", "--strict", "-c", &f]);
    assert_eq!(code, 64, "--strict makes warnings problems:\n{err}");
    assert!(err.contains("'bogus'"), "{err}");
}

#[test]
fn start_with_invalid_config_exits_64_without_binding() {
    let dir = tempfile::tempdir().expect("tmp");
    let (grpc, actuator) = (free_port(), free_port());
    let cfg = layotto_config(grpc, actuator, json!({"state": {"s": {"type": "nope"}}}));
    let f = write(&dir, "c.json", &cfg.to_string());
    let (code, _, err) = run_cli(&["start", "-c", &f]);
    assert_eq!(code, 64, "{err}");
    // Nothing was bound: both ports are still free.
    std::net::TcpListener::bind(("127.0.0.1", grpc)).expect("gRPC port still free");
    std::net::TcpListener::bind(("127.0.0.1", actuator)).expect("actuator port still free");
}

#[test]
fn missing_file_is_a_clear_error() {
    let (code, _, err) = run_cli(&["validate", "-c", "/nonexistent/layotto.json"]);
    assert_eq!(code, 64);
    assert!(err.contains("/nonexistent/layotto.json"), "{err}");
}
