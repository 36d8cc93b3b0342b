//! gRPC proxying (daprd's `pkg/api/grpc/proxy`): a call to a gRPC service the sidecar does not
//! serve itself, carrying `dapr-app-id` metadata, is forwarded untouched (frames, metadata,
//! trailers) to that app: this sidecar's own app's gRPC server, or another app's sidecar, whose
//! internal gRPC port takes it through the same handler and hands it to its app. Between
//! sidecars the caller adds `dapr-caller-app-id` and `dapr-callee-app-id`, as daprd does.
//!
//! The handler is the fallback of the API and internal gRPC routers: every service they serve
//! themselves keeps precedence. Without `dapr-app-id` the call is `UNIMPLEMENTED`, as tonic
//! answers unknown services.

use std::sync::Arc;

use axum::body::Body;
use layotto_dapr_wire::headers::{API_TOKEN_HEADER, APP_ID_HEADER};
use layotto_runtime::{CALLEE_APP_ID, CALLER_APP_ID, Route, Runtime};
use tonic::Status;
use tonic::transport::Channel;
use tower::ServiceExt as _;

use crate::dapr::ApiToken;
use crate::internal::Channels;

/// Forwards proxied calls of one sidecar.
pub struct GrpcProxy {
    rt: Arc<Runtime>,
    /// The app's own gRPC server (`--app-protocol grpc`).
    app: Option<Channel>,
    /// `APP_API_TOKEN`, sent to the app as `dapr-api-token`.
    app_token: Option<axum::http::HeaderValue>,
    remotes: Channels,
}

impl GrpcProxy {
    /// A proxy for `rt`'s app, whose gRPC server (if it has one) listens at `app`
    /// (`host`, `port`).
    ///
    /// # Errors
    /// An app address that is no valid URI authority.
    pub fn new(rt: Arc<Runtime>, app: Option<(&str, u16)>) -> Result<Self, String> {
        let app = app
            .map(|(host, port)| {
                crate::app_channel::lazy_channel(host, port)
                    .map_err(|e| format!("app address {host}:{port}: {e}"))
            })
            .transpose()?;
        let app_token = crate::app_channel::app_api_token()
            .and_then(|t| axum::http::HeaderValue::from_str(&t).ok());
        Ok(Self {
            rt,
            app,
            app_token,
            remotes: Channels::default(),
        })
    }

    /// Forwards `req`, checking `token` first (the API server's; `None` on the internal
    /// server, whose callers are sidecars).
    pub(crate) async fn forward(
        &self,
        token: Option<&ApiToken>,
        req: axum::http::Request<Body>,
    ) -> axum::http::Response<Body> {
        let internal = token.is_none();
        match self.try_forward(token, internal, req).await {
            Ok(r) => r,
            Err(s) => {
                let (parts, ()) = s.into_http::<()>().into_parts();
                axum::http::Response::from_parts(parts, Body::empty())
            }
        }
    }

    async fn try_forward(
        &self,
        token: Option<&ApiToken>,
        internal: bool,
        req: axum::http::Request<Body>,
    ) -> Result<axum::http::Response<Body>, Status> {
        if let Some(t) = token
            && !t.accepts(req.headers().get(API_TOKEN_HEADER).map(|v| v.as_bytes()))
        {
            return Err(Status::unauthenticated(
                "missing or invalid dapr-api-token (the sidecar runs with DAPR_API_TOKEN)",
            ));
        }
        let Some(target) = req
            .headers()
            .get(APP_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
        else {
            return Err(Status::unimplemented(format!(
                "unknown service or method {} (a call for an app's own service needs \
                 {APP_ID_HEADER} metadata)",
                req.uri().path()
            )));
        };
        // On the internal port the caller is another sidecar that resolved this one: the call is
        // for this sidecar's own app, never relayed further (no loops, no open relay).
        if internal {
            let id = target.split('.').next().unwrap_or_default();
            if id != self.rt.app_id() {
                return Err(Status::permission_denied(format!(
                    "failed to proxy request: this sidecar serves app '{}', not '{target}'",
                    self.rt.app_id()
                )));
            }
        }
        let route = if internal {
            Route::Own
        } else {
            self.rt.route(&target).await.map_err(|e| {
                Status::internal(format!(
                    "failed to proxy request: failed to resolve {target}: {}",
                    e.message
                ))
            })?
        };
        let (mut parts, body) = req.into_parts();
        parts.headers.remove(API_TOKEN_HEADER);
        let (channel, remote) = match &route {
            Route::Own => {
                if let Some(t) = &self.app_token {
                    parts.headers.insert(API_TOKEN_HEADER, t.clone());
                }
                let app = self.app.clone().ok_or_else(|| {
                    Status::unimplemented(format!(
                        "failed to proxy request: app '{target}' has no gRPC server (start \
                         the sidecar with --app-protocol grpc)"
                    ))
                })?;
                (app, None)
            }
            Route::Remote {
                address,
                id,
                namespace,
            } => {
                for (k, v) in [
                    (CALLER_APP_ID, self.rt.app_id()),
                    (CALLEE_APP_ID, id.as_str()),
                ] {
                    if let Ok(v) = axum::http::HeaderValue::from_str(v) {
                        parts.headers.insert(k, v);
                    }
                }
                let ch = self.remotes.get(address).map_err(Status::internal)?;
                (ch, Some((address.clone(), id.clone(), namespace.clone())))
            }
        };
        let forwarded = axum::http::Request::from_parts(parts, tonic::body::Body::new(body));
        match channel.oneshot(forwarded).await {
            Ok(resp) => Ok(resp.map(Body::new)),
            Err(e) => {
                if let Some((address, id, namespace)) = remote {
                    self.remotes.forget(&address);
                    self.rt.forget_route(&id, &namespace);
                }
                Err(Status::unavailable(format!(
                    "failed to proxy request to {target}: {e}"
                )))
            }
        }
    }
}

/// `routes` with `proxy` answering every call they do not serve, behind `token` when given.
pub(crate) fn with_fallback(
    routes: tonic::service::Routes,
    proxy: Option<Arc<GrpcProxy>>,
    token: Option<ApiToken>,
) -> tonic::service::Routes {
    let Some(proxy) = proxy else { return routes };
    routes
        .into_axum_router()
        .fallback(move |req: axum::http::Request<Body>| {
            let (proxy, token) = (proxy.clone(), token.clone());
            async move { proxy.forward(token.as_ref(), req).await }
        })
        .into()
}
