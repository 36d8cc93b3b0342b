//! Service invocation: this sidecar's own app through the app channel, any other app through
//! name resolution and the sidecar-to-sidecar channel (Dapr's direct messaging,
//! `dapr/dapr:pkg/messaging/direct_messaging.go`).
//!
//! Every way an app invokes (Dapr HTTP `/v1.0/invoke`, the `dapr-app-id` header, Dapr and
//! Layotto `InvokeService`) meets [`Runtime::invoke_service`]; the internal gRPC server hands
//! what other sidecars send to [`Runtime::invoke_local`].

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use layotto_core::{Error, ErrorKind, NameResolver, ResolveRequest, Result};

use crate::resiliency::{Guarded, judge_invocation};
use crate::{AppChannel, ChannelError, InvokeRequest, InvokeResponse, Runtime, lock};

/// Header (HTTP) and metadata (gRPC) key naming the calling app, set by the caller's sidecar
/// and passed to the callee app (daprd's `invokev1.CallerIDHeader`).
pub const CALLER_APP_ID: &str = "dapr-caller-app-id";
/// Key naming the called app, passed to the callee app (daprd's `invokev1.CalleeIDHeader`).
pub const CALLEE_APP_ID: &str = "dapr-callee-app-id";
/// Key naming the caller's namespace (daprd's `invokev1.CallerNamespaceHeader`).
pub const CALLER_NAMESPACE: &str = "dapr-caller-namespace";

/// An app as a caller names it: `id` or `id.namespace` (daprd's
/// `requestAppIDAndNamespace`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppAddress {
    /// The app id.
    pub id: String,
    /// The namespace the caller named, `None` for "the caller's own".
    pub namespace: Option<String>,
}

impl AppAddress {
    /// Parses `target`: `app` or `app.namespace`.
    ///
    /// # Errors
    /// An empty target (`InvalidArgument`); an empty part or more than one `.` (`Internal`:
    /// daprd's "invalid app id", which it answers 500 / `INTERNAL`).
    pub fn parse(target: &str) -> Result<Self> {
        if target.is_empty() {
            return Err(Error::empty_field("app id"));
        }
        let mut parts = target.split('.');
        let id = parts.next().unwrap_or_default();
        let namespace = parts.next();
        if parts.next().is_some() || id.is_empty() || namespace.is_some_and(str::is_empty) {
            return Err(Error::new(
                ErrorKind::Internal,
                format!("invalid app id {target}: expected 'app-id' or 'app-id.namespace'"),
            ));
        }
        Ok(Self {
            id: id.to_owned(),
            namespace: namespace.map(str::to_owned),
        })
    }
}

/// The sidecar-to-sidecar channel: how a request for another app reaches that app's sidecar.
/// The edge implements it over Dapr's `dapr.proto.internals.v1.ServiceInvocation`.
#[async_trait]
pub trait RemoteChannel: Send + Sync {
    /// Invokes `req` on app `callee` behind the sidecar whose internal gRPC port is at
    /// `address` (`host:port`). `req.headers` already carry [`CALLER_APP_ID`] and
    /// [`CALLEE_APP_ID`].
    ///
    /// # Errors
    /// [`ChannelError::Unavailable`] when that sidecar cannot be reached or failed (the
    /// resolution is then forgotten), [`ChannelError::Unimplemented`] when it does not serve
    /// invocation.
    async fn invoke(
        &self,
        address: &str,
        callee: &str,
        req: &InvokeRequest,
    ) -> std::result::Result<InvokeResponse, ChannelError>;
}

/// Channels to non-Dapr HTTP services (Dapr's `HTTPEndpoint` resources, and URLs given as the
/// app id). The edge implements them over its HTTP client.
pub trait EndpointChannels: Send + Sync {
    /// The channel to the `HTTPEndpoint` named `name`, if there is one.
    fn endpoint(&self, name: &str) -> Option<Arc<dyn AppChannel>>;
    /// A channel to base URL `url` (`http://...` or `https://...`).
    ///
    /// # Errors
    /// `InvalidArgument` for a URL that does not parse.
    fn url(&self, url: &str) -> Result<Arc<dyn AppChannel>>;
}

/// How long a resolved address is reused before the resolver is asked again (so that calls
/// spread over several instances of an app, and a moved one is found).
pub const RESOLUTION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Name resolution and the remote channel, once the internal gRPC server runs.
pub(crate) struct Remote {
    resolver: Arc<dyn NameResolver>,
    channel: Arc<dyn RemoteChannel>,
    /// This sidecar's internal gRPC port (the port Kubernetes DNS resolution assumes).
    port: u16,
    /// Resolved addresses by `(id, namespace)` with when they were resolved; forgotten after
    /// [`RESOLUTION_LIFETIME`] or when a call to them fails.
    cache: std::sync::Mutex<HashMap<(String, String), (String, std::time::Instant)>>,
}

/// Where calls for an app go ([`Runtime::route`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// This sidecar's own app.
    Own,
    /// Another app's sidecar.
    Remote {
        /// `host:port` of its internal gRPC API.
        address: String,
        /// The app id.
        id: String,
        /// Its namespace.
        namespace: String,
    },
}

impl Remote {
    /// The address of `id` in `namespace`, and whether it was just resolved (not cached).
    async fn resolve(&self, id: &str, namespace: &str) -> Result<(String, bool)> {
        let key = (id.to_owned(), namespace.to_owned());
        let cached = lock(&self.cache)
            .get(&key)
            .filter(|(_, at)| at.elapsed() < RESOLUTION_LIFETIME)
            .map(|(a, _)| a.clone());
        if let Some(a) = cached {
            return Ok((a, false));
        }
        let a = self
            .resolver
            .resolve(&ResolveRequest {
                id: id.to_owned(),
                namespace: namespace.to_owned(),
                port: self.port,
            })
            .await?;
        lock(&self.cache).insert(key, (a.clone(), std::time::Instant::now()));
        Ok((a, true))
    }

    fn forget(&self, id: &str, namespace: &str) {
        lock(&self.cache).remove(&(id.to_owned(), namespace.to_owned()));
    }
}

impl Runtime {
    /// Makes `channel` the way to reach the app for service invocation (also done by
    /// [`Runtime::start_app_subscriptions`]).
    pub fn set_app_channel(&self, channel: Arc<dyn AppChannel>) {
        *lock(&self.app_channel) = Some(channel);
    }

    /// Makes other apps reachable: `resolver` finds their sidecars, `channel` carries the
    /// calls; `internal_port` is this sidecar's internal gRPC port.
    pub fn set_remote_invocation(
        &self,
        resolver: Arc<dyn NameResolver>,
        channel: Arc<dyn RemoteChannel>,
        internal_port: u16,
    ) {
        *lock(&self.remote) = Some(Arc::new(Remote {
            resolver,
            channel,
            port: internal_port,
            cache: std::sync::Mutex::default(),
        }));
    }

    /// This sidecar's namespace (`$NAMESPACE`, empty in self-hosted mode).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Invokes `req.method` on app `target` (`id` or `id.namespace`): this sidecar's own app
    /// through the app channel, another through name resolution and the remote channel, under
    /// the Resiliency policies targeting that app id (timeouts, retries, circuit breakers).
    ///
    /// # Errors
    /// Empty or malformed app id, empty method (`InvalidArgument`); another app without remote
    /// invocation configured, or unknown to name resolution (`NotFound`); no app channel or the
    /// app or its sidecar unreachable (`Unavailable`); the app cannot take invocations
    /// (`Unsupported`).
    pub async fn invoke_service(
        &self,
        target: &str,
        req: &InvokeRequest,
    ) -> Result<InvokeResponse> {
        if req.method.is_empty() {
            return Err(Error::empty_field("method"));
        }
        if let Some((key, channel)) = self.external(target)? {
            return self.invoke_external(&key, channel, req.clone()).await;
        }
        let (id, namespace) = self.addressed(target)?;
        let mut req = req.clone();
        self.mark_call(&mut req, &id);
        let policies = self.policies.app(&id);
        if policies.is_some_and(|p| p.retry.is_some()) {
            // A retried request is sent again: a streamed body is read whole first (daprd's
            // replay buffer).
            req.data = std::mem::take(&mut req.data).replayable().await?;
        }
        let once = || self.invoke_once(target, &id, &namespace, &req);
        match policies {
            Some(p) => {
                let to = Guarded {
                    target: &format!("app_{id}"),
                    endpoint: &format!("{id}:{}", req.method),
                    inbound: false,
                };
                self.policies
                    .run(p, &to, &self.metrics, once, judge_invocation)
                    .await
            }
            None => once().await,
        }
    }

    /// The non-Dapr service `target` names, as daprd decides (`dapr/dapr:pkg/messaging/
    /// direct_messaging.go`): a URL (`http://...`, `https://...`) as it is, or the id part of
    /// `id.namespace` naming an `HTTPEndpoint` (which wins over an app of that id); with the
    /// key its Resiliency policies are looked up by (the URL, or the endpoint's name).
    fn external(&self, target: &str) -> Result<Option<(String, Arc<dyn AppChannel>)>> {
        let Some(endpoints) = lock(&self.endpoints).clone() else {
            return Ok(None);
        };
        if target.starts_with("http://") || target.starts_with("https://") {
            return Ok(Some((target.to_owned(), endpoints.url(target)?)));
        }
        let id = target.split('.').next().unwrap_or_default();
        Ok(endpoints.endpoint(id).map(|c| (id.to_owned(), c)))
    }

    /// Invokes `req.method` on a non-Dapr HTTP service through `channel`, under the Resiliency
    /// policies of apps targeting `key`. The request goes as the caller made it: no caller or
    /// callee id is added.
    async fn invoke_external(
        &self,
        key: &str,
        channel: Arc<dyn AppChannel>,
        mut req: InvokeRequest,
    ) -> Result<InvokeResponse> {
        let policies = self.policies.app(key);
        if policies.is_some_and(|p| p.retry.is_some()) {
            req.data = std::mem::take(&mut req.data).replayable().await?;
        }
        let once = || async {
            channel.invoke(&req).await.map_err(|e| match e {
                ChannelError::Unimplemented => Error::new(
                    ErrorKind::Unsupported,
                    format!("endpoint '{key}' cannot be invoked"),
                ),
                ChannelError::Unavailable(m) | ChannelError::Failed(m) => {
                    Error::unavailable(format!("invoking '{}' on '{key}': {m}", req.method))
                }
            })
        };
        match policies {
            Some(p) => {
                let to = Guarded {
                    target: &format!("app_{key}"),
                    endpoint: &format!("{key}:{}", req.method),
                    inbound: false,
                };
                self.policies
                    .run(p, &to, &self.metrics, once, judge_invocation)
                    .await
            }
            None => once().await,
        }
    }

    /// Makes non-Dapr HTTP services invocable: `HTTPEndpoint` resources by name, any URL given
    /// as the app id.
    pub fn set_endpoint_channels(&self, channels: Arc<dyn EndpointChannels>) {
        *lock(&self.endpoints) = Some(channels);
    }

    /// The names of the `HTTPEndpoint` resources loaded (daprd's metadata `httpEndpoints`).
    pub fn http_endpoint_names(&self) -> &[String] {
        &self.endpoint_names
    }

    /// `target`'s app id and namespace (the caller's own when it names none).
    fn addressed(&self, target: &str) -> Result<(String, String)> {
        let a = AppAddress::parse(target)?;
        let namespace = a.namespace.unwrap_or_else(|| self.namespace.clone());
        Ok((a.id, namespace))
    }

    /// Whether app `id` in `namespace` is this sidecar's own.
    fn is_own(&self, id: &str, namespace: &str) -> bool {
        id == self.app_id && namespace == self.namespace
    }

    /// One attempt of [`Runtime::invoke_service`] of the marked `req` on app `id` in
    /// `namespace`, without resiliency policies.
    async fn invoke_once(
        &self,
        target: &str,
        id: &str,
        namespace: &str,
        req: &InvokeRequest,
    ) -> Result<InvokeResponse> {
        if self.is_own(id, namespace) {
            return self.invoke_local(req).await;
        }
        let remote = self.remote_for(target)?;
        // One retry with a fresh resolution when a cached address could not be reached (never
        // after the callee answered, so a request that reached an app is not sent twice, and
        // never with a streamed body, which the first attempt consumed): the callee may have
        // moved since it was resolved.
        for attempt in 0..2 {
            let (at, fresh) = remote.resolve(id, namespace).await?;
            match remote.channel.invoke(&at, id, req).await {
                Ok(r) => return Ok(r),
                Err(ChannelError::Unavailable(m)) => {
                    remote.forget(id, namespace);
                    if fresh || attempt == 1 || req.data.is_stream() {
                        return Err(Error::unavailable(format!(
                            "invoking '{}' on app '{target}' at {at}: {m}",
                            req.method
                        )));
                    }
                }
                Err(ChannelError::Unimplemented) => {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        format!("the sidecar of app '{target}' at {at} does not serve invocation"),
                    ));
                }
                Err(ChannelError::Failed(m)) => {
                    return Err(Error::new(
                        ErrorKind::Internal,
                        format!("invoking '{}' on app '{target}' at {at}: {m}", req.method),
                    ));
                }
            }
        }
        unreachable!("the second attempt always returns")
    }

    fn remote_for(&self, target: &str) -> Result<Arc<Remote>> {
        lock(&self.remote).clone().ok_or_else(|| {
            Error::not_found(format!(
                "app id '{target}' is not known: this sidecar has no internal gRPC port \
                 (--dapr-internal-grpc-port), so it reaches only its own app '{}'",
                self.app_id
            ))
        })
    }

    /// Where calls for `target` (`id` or `id.namespace`) go: this sidecar's own app, or the
    /// internal gRPC port of another app's sidecar (for gRPC proxying, which forwards whole
    /// HTTP/2 calls rather than invocations).
    ///
    /// # Errors
    /// As [`Runtime::invoke_service`] for the id.
    pub async fn route(&self, target: &str) -> Result<Route> {
        let (id, namespace) = self.addressed(target)?;
        if self.is_own(&id, &namespace) {
            return Ok(Route::Own);
        }
        let remote = self.remote_for(target)?;
        let (at, _) = remote.resolve(&id, &namespace).await?;
        Ok(Route::Remote {
            address: at,
            id,
            namespace,
        })
    }

    /// Forgets the resolution of `id` in `namespace` (after a call to it failed).
    pub fn forget_route(&self, id: &str, namespace: &str) {
        if let Some(r) = lock(&self.remote).clone() {
            r.forget(id, namespace);
        }
    }

    /// The headers daprd adds to every invocation: who calls, who is called.
    fn mark_call(&self, req: &mut InvokeRequest, callee: &str) {
        req.headers.retain(|(k, _)| {
            !k.eq_ignore_ascii_case(CALLER_APP_ID)
                && !k.eq_ignore_ascii_case(CALLEE_APP_ID)
                && !k.eq_ignore_ascii_case(CALLER_NAMESPACE)
        });
        req.headers
            .push((CALLER_APP_ID.to_owned(), self.app_id.clone()));
        req.headers
            .push((CALLEE_APP_ID.to_owned(), callee.to_owned()));
        if !self.namespace.is_empty() {
            req.headers
                .push((CALLER_NAMESPACE.to_owned(), self.namespace.clone()));
        }
    }

    /// Invokes `req.method` on this sidecar's own app: what the internal gRPC server does with
    /// a call another sidecar sends.
    ///
    /// # Errors
    /// Empty method (`InvalidArgument`); no app channel or the app unreachable
    /// (`Unavailable`); the app cannot take invocations (`Unsupported`).
    pub async fn invoke_local(&self, req: &InvokeRequest) -> Result<InvokeResponse> {
        if req.method.is_empty() {
            return Err(Error::empty_field("method"));
        }
        let app_id = &self.app_id;
        let channel = lock(&self.app_channel).clone().ok_or_else(|| {
            Error::unavailable(format!(
                "app '{app_id}' has no app channel (start the sidecar with an app port)"
            ))
        })?;
        channel.invoke(req).await.map_err(|e| match e {
            ChannelError::Unimplemented => Error::new(
                ErrorKind::Unsupported,
                format!("app '{app_id}' does not accept service invocation"),
            ),
            ChannelError::Unavailable(m) => {
                Error::unavailable(format!("invoking '{}' on app '{app_id}': {m}", req.method))
            }
            ChannelError::Failed(m) => Error::new(
                ErrorKind::Internal,
                format!("invoking '{}' on app '{app_id}': {m}", req.method),
            ),
        })
    }

    /// Withdraws this sidecar from name resolution (shutdown).
    pub async fn close_remote_invocation(&self) {
        let remote = lock(&self.remote).take();
        if let Some(r) = remote {
            r.resolver.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_addresses_parse_as_daprd() {
        assert_eq!(
            AppAddress::parse("orders").unwrap(),
            AppAddress {
                id: "orders".into(),
                namespace: None
            }
        );
        assert_eq!(
            AppAddress::parse("orders.prod").unwrap(),
            AppAddress {
                id: "orders".into(),
                namespace: Some("prod".into())
            }
        );
        assert_eq!(
            AppAddress::parse("").unwrap_err().kind,
            ErrorKind::InvalidArgument
        );
        for bad in ["a.b.c", ".ns", "app.", "."] {
            let e = AppAddress::parse(bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Internal, "{bad}");
            assert!(e.message.starts_with("invalid app id "), "{}", e.message);
        }
    }
}
