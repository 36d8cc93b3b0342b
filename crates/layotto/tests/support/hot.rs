//! What the hot-reload tests share: a state store swapped from memory to Redis under a
//! client that never pauses, and waiting for the sidecar to show a change.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::daprd::request;

/// Waits (10 s at most) until `f` holds.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "not within 10 s: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The metadata API of the sidecar at HTTP port `http`.
pub fn metadata(http: u16) -> Value {
    let meta = request(http, "GET", "/v1.0/metadata", &[], "").expect("metadata");
    serde_json::from_str(&meta.body).expect("json")
}

/// The names of the components the sidecar at HTTP port `http` lists.
pub fn component_names(http: u16) -> Vec<String> {
    metadata(http)["components"]
        .as_array()
        .expect("components")
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_owned())
        .collect()
}

/// Saves `value` under `key` in state store `store`: the error, if the call fails.
pub fn save(http: u16, store: &str, key: &str, value: &str) -> Result<(), String> {
    let body = json!([{"key": key, "value": value}]).to_string();
    match request(http, "POST", &format!("/v1.0/state/{store}"), &[], &body) {
        Some(r) if r.status == 204 => Ok(()),
        other => Err(format!("save {key}: {other:?}")),
    }
}

/// Reads `key` of state store `store` (an empty body when it is not there).
pub fn get(http: u16, store: &str, key: &str) -> Result<String, String> {
    match request(http, "GET", &format!("/v1.0/state/{store}/{key}"), &[], "") {
        Some(r) if r.status == 200 || r.status == 204 => Ok(r.body),
        other => Err(format!("get {key}: {other:?}")),
    }
}

/// Runs `edit`, which turns state store `store` of app `app_id` (sidecar HTTP port `http`)
/// from `state.in-memory` into `state.redis` on the redis-server at `redis_port`, while a
/// client saves and reads back keys without pause. Asserts that no call failed, that calls
/// ran across the swap, and that a write lands in Redis (in daprd's hash layout) within 5 s.
pub fn swap_to_redis_under_load(
    http: u16,
    store: &str,
    app_id: &str,
    redis_port: u16,
    edit: impl FnOnce(),
) {
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let client = {
        let (stop, calls, store) = (stop.clone(), calls.clone(), store.to_owned());
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let key = format!("k{i}");
                // A key saved on the old store and read on the new one is not found: the
                // two stores share no data. What counts is that no call fails.
                let r = save(http, &store, &key, &format!("v{i}"))
                    .and_then(|()| get(http, &store, &key));
                if let Err(e) = r {
                    failures.push(e);
                }
                calls.fetch_add(1, Ordering::SeqCst);
            }
            failures
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let before = calls.load(Ordering::SeqCst);
    edit();
    let edited = Instant::now();
    let stored = format!("{app_id}||probe");
    eventually("writes land in Redis", || {
        if save(http, store, "probe", "p").is_err() {
            return false;
        }
        let out = Command::new("redis-cli")
            .args(["-p", &redis_port.to_string(), "HGET", &stored, "data"])
            .output()
            .expect("redis-cli (Debian package redis-tools)");
        String::from_utf8_lossy(&out.stdout).trim() == "\"p\""
    });
    let took = edited.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let failures = client.join().expect("the client thread");
    let during = calls.load(Ordering::SeqCst) - before;
    assert!(
        failures.is_empty(),
        "calls failed during the swap: {failures:?}"
    );
    assert!(during > 20, "only {during} calls ran across the swap");
    assert!(took < Duration::from_secs(5), "the edit took {took:?}");
}
