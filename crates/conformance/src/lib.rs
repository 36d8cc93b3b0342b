//! Conformance suites of layotto-rs.
//!
//! One generic async suite per contract of `layotto-core` (state, lock, sequencer,
//! configuration, pub/sub, secrets, files, output bindings). Each suite takes a component
//! factory, so the in-memory components and every real backend run the same cases: a backend is
//! correct when it passes its suite. Suites of contracts whose cases need data prepared outside
//! the component (secrets, bindings) also take the fixture the test prepared.
//!
//! Suites are feature-driven ([`run::SuiteRun`]): besides its base cases, a suite runs the
//! cases of every [`Feature`](layotto_core::Feature) the component claims, names each case it
//! skips because a feature is not claimed, and fails when the component claims a feature the
//! suite has no cases for, so a claim never goes unproven.
//!
//! Every case is also a public function of its own, so a backend test can run a single case.
//! Cases panic with a message naming the case and the broken expectation (they are test
//! helpers). Each case uses unique keys, topics and groups ([`unique`]), so suites can run
//! against a shared, long-lived backend and concurrently with each other.
//!
//! Factories must return a ready component: `init` already called. A suite builds one more
//! component than it has cases, to read the features it claims.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub mod binding;
pub mod broker_fault;
pub mod configuration;
pub mod file;
pub mod input_binding;
pub mod lock;
pub mod pubsub;
pub mod run;
pub mod secret;
pub mod sequencer;
pub mod state;

/// A name unique to this call: `prefix`, then a process-wide counter, the process id and the
/// current time in nanoseconds, e.g. `state-7-4242-1715000000123456789`.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{n}-{}-{nanos}", std::process::id())
}

/// Awaits `fut`, a call made while its backend is down or frozen, and asserts it fails with
/// `Unavailable` within the component's call `timeout` plus 1.5 s of slack (not hanging, not
/// another error); panics naming `what` otherwise.
pub async fn unavailable_within<T: std::fmt::Debug>(
    timeout: Duration,
    what: &str,
    fut: impl Future<Output = layotto_core::Result<T>>,
) {
    let started = std::time::Instant::now();
    let e = within(Duration::from_secs(10), what, fut)
        .await
        .expect_err(what);
    assert_eq!(e.kind, layotto_core::ErrorKind::Unavailable, "{what}: {e}");
    assert!(
        started.elapsed() < timeout + Duration::from_millis(1500),
        "{what} took {:?} with a {timeout:?} timeout",
        started.elapsed()
    );
}

/// Awaits `fut` for at most `limit`; panics naming `what` when it takes longer.
pub async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}
