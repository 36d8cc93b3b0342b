//! MOSN's `flowControlFilter` on the Layotto gRPC listener: a per-method rate limit.
//!
//! Each rule of [`layotto_config::FlowControl`] allows `threshold` calls of one gRPC method
//! (`resource`, its path such as `/spec.proto.runtime.v1.Runtime/SayHello`) per window of
//! `grade` seconds (`mosn/layotto:docs/en/start/stream_filter/flow_control.md`); a call over
//! the limit is answered `RESOURCE_EXHAUSTED` ("current request is limited", MOSN's wording)
//! without reaching the runtime. The limit is a token bucket (the `governor` crate): a burst of
//! `threshold` calls, then one more every `window / threshold`.

use std::collections::HashMap;
use std::future::Ready;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::Either;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use layotto_config::FlowControl;
use tonic::codegen::http;

/// The limiters of every rule, by method path.
#[derive(Clone, Default)]
pub struct FlowControlLayer {
    limits: Arc<HashMap<String, DefaultDirectRateLimiter>>,
}

impl std::fmt::Debug for FlowControlLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowControlLayer")
            .field("methods", &self.limits.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl FlowControlLayer {
    /// The limiters of `config`'s rules (none when `config` is `None`). A later rule for the
    /// same method replaces an earlier one.
    pub fn new(config: Option<&FlowControl>) -> Self {
        let mut limits = HashMap::new();
        for rule in config.map(|c| c.rules.as_slice()).unwrap_or_default() {
            let Some(threshold) = NonZeroU32::new(rule.threshold) else {
                continue;
            };
            let period = (rule.window / threshold.get()).max(Duration::from_nanos(1));
            let Some(quota) = Quota::with_period(period) else {
                continue;
            };
            limits.insert(
                rule.resource.clone(),
                RateLimiter::direct(quota.allow_burst(threshold)),
            );
        }
        Self {
            limits: Arc::new(limits),
        }
    }
}

impl<S> tower::Layer<S> for FlowControlLayer {
    type Service = FlowControlled<S>;
    fn layer(&self, inner: S) -> FlowControlled<S> {
        FlowControlled {
            inner,
            limits: self.limits.clone(),
        }
    }
}

/// A gRPC service behind the flow-control rules.
#[derive(Clone)]
pub struct FlowControlled<S> {
    inner: S,
    limits: Arc<HashMap<String, DefaultDirectRateLimiter>>,
}

impl<S, B> tower::Service<http::Request<B>> for FlowControlled<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    // No box: the wrapper adds no allocation to an rpc, limited or not.
    type Future = Either<Ready<Result<S::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if !self.limits.is_empty()
            && let Some(limit) = self.limits.get(req.uri().path())
            && limit.check().is_err()
        {
            let status = tonic::Status::resource_exhausted(format!(
                "current request is limited: {} allows no more calls now (flowControlFilter)",
                req.uri().path()
            ));
            return Either::Left(std::future::ready(Ok(status.into_http())));
        }
        Either::Right(self.inner.call(req))
    }
}
