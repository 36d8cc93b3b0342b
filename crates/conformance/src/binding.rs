//! Suite of the [`OutputBinding`] contract: the operations a binding lists, each of them
//! invoked against the real system behind it (operation, target, payload and metadata must
//! arrive, the reply must come back), binary payloads, an unsupported operation, and a failing
//! backend.
//!
//! The test runs the system behind the binding (for the `http` binding, an HTTP server) and
//! describes it in a [`BindingBackend`]: how each operation looks there, how request metadata
//! addresses a target, and a channel of what the system saw ([`Seen`]).

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use layotto_core::binding::{BindingRequest, OutputBinding};
use layotto_core::{ErrorKind, Feature, Metadata};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::run::SuiteRun;
use crate::{unique, within};

/// The features this suite has cases for: none (Dapr derives `OUTPUT_BINDING` from the kind and
/// defines no binding features); a component claiming any feature fails the suite.
pub const FEATURES: &[Feature] = &[];

/// How long the backend may take to report an invocation.
const WAIT: Duration = Duration::from_secs(10);

/// One invocation as the system behind the binding saw it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Seen {
    /// The operation in the backend's terms, e.g. the HTTP method `POST`.
    pub operation: String,
    /// The target the invocation addressed, as [`BindingBackend::route`] named it.
    pub target: String,
    /// The payload as it arrived.
    pub data: Bytes,
    /// Metadata as it arrived (HTTP: the request headers, names lower-case).
    pub metadata: Metadata,
    /// What the backend answered: the payload the binding must return.
    pub reply: Bytes,
}

/// The system behind an output binding, as the test runs it.
pub struct BindingBackend {
    /// For every operation the binding supports, how the backend sees it (HTTP: `create` ->
    /// `POST`). Must list exactly the binding's [`OutputBinding::operations`].
    pub operations: HashMap<String, String>,
    /// Operations whose payload does not reach the backend (their `data` is not checked).
    pub without_data: Vec<String>,
    /// Request metadata that addresses `target` (HTTP: `{"path": "/<target>"}`); the backend
    /// reports the target back in [`Seen::target`].
    pub route: Box<dyn Fn(&str) -> Metadata + Send + Sync>,
    /// A request metadata key that must reach the backend, and the key it arrives under
    /// (HTTP: header `X-Conformance-Token` arrives as `x-conformance-token`).
    pub passed_metadata: (String, String),
    /// A target at which the backend fails (HTTP: answers 500); `None` skips the case.
    pub failing_target: Option<String>,
    /// What the backend saw, one item per invocation, in order.
    pub seen: UnboundedReceiver<Seen>,
}

impl std::fmt::Debug for BindingBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BindingBackend")
            .field("operations", &self.operations)
            .field("without_data", &self.without_data)
            .field("passed_metadata", &self.passed_metadata)
            .field("failing_target", &self.failing_target)
            .finish_non_exhaustive()
    }
}

impl BindingBackend {
    /// The next invocation the backend saw, waiting at most 10 s.
    ///
    /// # Panics
    /// When nothing arrives in time or the backend is gone; the message names `what`.
    pub async fn next(&mut self, what: &str) -> Seen {
        within(WAIT, what, self.seen.recv())
            .await
            .unwrap_or_else(|| panic!("{what}: the backend's channel is closed"))
    }

    /// Drops what the backend saw so far.
    fn drain(&mut self) {
        while self.seen.try_recv().is_ok() {}
    }

    /// The first invocation the backend saw within `wait`, if any.
    async fn quiet(&mut self, wait: Duration) -> Option<Seen> {
        tokio::time::timeout(wait, self.seen.recv())
            .await
            .ok()
            .flatten()
    }

    fn request(&self, op: &str, target: &str, data: Bytes, token: &str) -> BindingRequest {
        let mut metadata = (self.route)(target);
        metadata.insert(self.passed_metadata.0.clone(), token.to_owned());
        BindingRequest {
            operation: op.to_owned(),
            data,
            metadata,
        }
    }
}

/// Runs every case against a fresh binding from `factory`, which must point at the system
/// `backend` describes; prints each skipped case.
///
/// # Panics
/// When a case fails (its message, then the run's summary), or when the component claims a
/// feature ([`FEATURES`] is empty).
pub async fn run_all<F, Fut>(factory: F, backend: &mut BindingBackend)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn OutputBinding>>,
{
    let mut run = SuiteRun::start("binding", factory().await.features(), FEATURES);
    let f = &factory;
    run.case("binding::operations_listed", async {
        operations_listed(&*f().await, backend);
    })
    .await;
    run.case("binding::invoke_each_operation", async {
        invoke_each_operation(&*f().await, backend).await;
    })
    .await;
    run.case("binding::binary_payload", async {
        binary_payload(&*f().await, backend).await;
    })
    .await;
    run.case("binding::unsupported_operation", async {
        unsupported_operation(&*f().await, backend).await;
    })
    .await;
    if backend.failing_target.is_none() {
        run.skip(
            "binding::backend_failure",
            "the backend has no failing target",
        );
    } else {
        run.case("binding::backend_failure", async {
            backend_failure(&*f().await, backend).await;
        })
        .await;
    }
    run.finish();
}

/// The operations are listed once each, and are exactly those the backend describes.
pub fn operations_listed(binding: &dyn OutputBinding, backend: &BindingBackend) {
    let case = "binding::operations_listed";
    let ops = binding.operations();
    assert!(!ops.is_empty(), "{case}: the binding lists no operation");
    let listed: BTreeSet<&str> = ops.iter().map(String::as_str).collect();
    assert_eq!(listed.len(), ops.len(), "{case}: duplicates in {ops:?}");
    let described: BTreeSet<&str> = backend.operations.keys().map(String::as_str).collect();
    assert_eq!(
        listed, described,
        "{case}: the binding's operations differ from those the backend fixture can check"
    );
}

/// A data-carrying operation (sorted first), for the cases that need one.
fn data_op(binding: &dyn OutputBinding, backend: &BindingBackend, case: &str) -> String {
    let mut ops = binding.operations();
    ops.sort();
    ops.into_iter()
        .find(|o| !backend.without_data.contains(o))
        .unwrap_or_else(|| panic!("{case}: no operation carries a payload"))
}

/// Each operation, invoked with a payload, a target and a metadata token: the backend sees
/// the expected operation, the target, the payload and the token, and the binding returns the
/// backend's reply.
pub async fn invoke_each_operation(binding: &dyn OutputBinding, backend: &mut BindingBackend) {
    let case = "binding::invoke_each_operation";
    backend.drain();
    let mut ops = binding.operations();
    ops.sort();
    for op in ops {
        let target = unique("binding-target");
        let token = unique("token");
        let data = Bytes::from(format!("{{\"op\":\"{op}\",\"token\":\"{token}\"}}"));
        let req = backend.request(&op, &target, data.clone(), &token);
        let resp = binding
            .invoke(req)
            .await
            .unwrap_or_else(|e| panic!("{case}: invoke '{op}' failed: {e}"));
        let seen = backend
            .next(&format!("{case}: the backend seeing '{op}'"))
            .await;
        let want_op = &backend.operations[&op];
        assert_eq!(&seen.operation, want_op, "{case}: '{op}' arrived as");
        assert_eq!(seen.target, target, "{case}: '{op}' target");
        if !backend.without_data.contains(&op) {
            assert_eq!(seen.data, data, "{case}: '{op}' payload");
        }
        let key = &backend.passed_metadata.1;
        assert_eq!(
            seen.metadata.get(key),
            Some(&token),
            "{case}: '{op}' metadata '{key}' did not arrive (got {:?})",
            seen.metadata
        );
        assert_eq!(resp.data, seen.reply, "{case}: '{op}' reply");
    }
}

/// A 64 KiB payload of every byte value arrives unchanged.
pub async fn binary_payload(binding: &dyn OutputBinding, backend: &mut BindingBackend) {
    let case = "binding::binary_payload";
    backend.drain();
    let op = data_op(binding, backend, case);
    let data: Bytes = (0..64 * 1024u32)
        .map(|i| u8::try_from(i % 251).unwrap_or(0) ^ 0xa5)
        .collect::<Vec<u8>>()
        .into();
    let (target, token) = (unique("binding-binary"), unique("token"));
    let req = backend.request(&op, &target, data.clone(), &token);
    binding
        .invoke(req)
        .await
        .unwrap_or_else(|e| panic!("{case}: invoke '{op}' failed: {e}"));
    let seen = backend
        .next(&format!("{case}: the backend seeing '{op}'"))
        .await;
    assert!(
        seen.data == data,
        "{case}: payload changed ({} bytes arrived of {})",
        seen.data.len(),
        data.len()
    );
}

/// An operation the binding does not list fails with `InvalidArgument` naming it, and
/// nothing reaches the backend.
pub async fn unsupported_operation(binding: &dyn OutputBinding, backend: &mut BindingBackend) {
    let case = "binding::unsupported_operation";
    backend.drain();
    let op = "conformance-no-such-operation";
    let req = backend.request(op, &unique("binding-unsupported"), Bytes::from("x"), "t");
    match binding.invoke(req).await {
        Ok(r) => panic!("{case}: invoke of '{op}' succeeded: {r:?}"),
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{case}: {e:?}");
            assert!(
                e.message.contains(op),
                "{case}: message does not name '{op}': {e}"
            );
        }
    }
    if let Some(s) = backend.quiet(Duration::from_millis(300)).await {
        panic!("{case}: the backend saw an unsupported operation: {s:?}");
    }
}

/// An invocation the backend fails is an error for the caller (not a reply).
pub async fn backend_failure(binding: &dyn OutputBinding, backend: &mut BindingBackend) {
    let case = "binding::backend_failure";
    backend.drain();
    let Some(target) = backend.failing_target.clone() else {
        return;
    };
    let op = data_op(binding, backend, case);
    let req = backend.request(&op, &target, Bytes::from("x"), &unique("token"));
    if let Ok(r) = binding.invoke(req).await {
        panic!("{case}: invoke of '{op}' at the failing target succeeded: {r:?}");
    }
    let seen = backend
        .next(&format!("{case}: the backend seeing '{op}'"))
        .await;
    assert_eq!(seen.target, target, "{case}: target");
}
