//! The app channel to a Dapr HTTP app (`--app-protocol http`): the sidecar calls the app's HTTP
//! server at `http://host:port` (HTTP/1.1, plain text) the way Dapr's HTTP channel does
//! (`dapr/dapr:pkg/channel/http/http_channel.go`).
//!
//! # Subscriptions: `GET /dapr/subscribe`
//!
//! The app answers a JSON array (Dapr docs, "Pub/sub API reference", section "Provide a route
//! for Dapr to discover topic subscriptions"; parsed as `GetSubscriptionsHTTP` in
//! `dapr/dapr:pkg/runtime/pubsub/subscriptions.go` does). Both shapes are accepted, also mixed:
//!
//! ```json
//! [
//!   {"pubsubname": "ps", "topic": "orders", "route": "/orders",
//!    "metadata": {"rawPayload": "true"}, "deadLetterTopic": "poison"},
//!   {"pubsubname": "ps", "topic": "items",
//!    "routes": {"rules": [{"match": "event.type == \"widget\"", "path": "/widgets"}],
//!               "default": "/items"}}
//! ]
//! ```
//!
//! Keys match case-insensitively, as Go's `encoding/json` matches them (`pubsubName` works).
//! The routes are Dapr's rules in order (`routes.rules`, each a CEL `match` and a `path`), then
//! `routes.default`, else the v1 `route`, as a last rule that always matches; the runtime
//! evaluates them per event. A subscription left without any route is skipped, as Dapr
//! removes "topic ... has an empty routes". A route without a leading `/` is posted at `/` +
//! route (Dapr joins base address, `/` and path). `deadLetterTopic` names the topic events the
//! app fails or drops go to. With
//! `bulkSubscribe: {enabled: true}` events arrive in Dapr's bulk envelope (one entry each) and
//! the app's `statuses` answer decides per entry; a missing status retries.
//!
//! Answers: 200 with a JSON array (or an empty body / `null`) lists them; 404 means no
//! subscriptions (Dapr: "user app did not subscribe to any topic"); a 5xx answer, a
//! malformed body or an unreachable app is [`ChannelError::Unavailable`] so the runtime asks
//! again; any other status is logged and means no subscriptions (as Dapr does).
//!
//! # Events: `POST <route>`
//!
//! Each event is posted as a structured CloudEvent, `Content-Type: application/cloudevents+json`
//! (`dapr/dapr:pkg/runtime/subscription/postman/http/http.go`), with the message metadata and
//! `pubsubName` as HTTP headers, as Dapr sends them. Fields: `id`, `source`, `type`,
//! `specversion`, `datacontenttype`, `data` (the JSON value for JSON data, a string for text)
//! or `data_base64` (anything else), `topic`, `pubsubname`, `traceid`, `traceparent`,
//! `tracestate` when the message carries them, and the event's other attributes (`time`,
//! extensions) as published ([`delivered`]). For a subscription with metadata
//! `rawPayload: "true"` the payload is wrapped as Dapr's `FromRawPayload` does
//! (`dapr/components-contrib:pubsub/envelope.go`): `data_base64` of the raw bytes,
//! `datacontenttype: application/octet-stream`, `source: Dapr`.
//!
//! The app's answer (Dapr docs, "Pub/sub API reference", "Expected HTTP Response"):
//!
//! | answer | outcome |
//! |---|---|
//! | 2xx, body empty, not a JSON object, or without `status` | [`EventOutcome::Success`] |
//! | 2xx, `{"status": "SUCCESS"}` (or `""`) | [`EventOutcome::Success`] |
//! | 2xx, `{"status": "RETRY"}` | [`EventOutcome::Retry`] |
//! | 2xx, `{"status": "DROP"}` | [`EventOutcome::Drop`] |
//! | 2xx, any other `status` string (case-sensitive) | [`EventOutcome::Retry`] |
//! | 404 | [`EventOutcome::Drop`] (logged as an error) |
//! | any other status | [`EventOutcome::Retry`] (logged) |
//! | no answer (refused, reset, timed out) | [`ChannelError::Unavailable`] |
//!
//! # Service invocation: `<VERB> /<method>?<query>`
//!
//! Dapr docs, "Service invocation API reference": the request reaches the app with its verb,
//! path, query string, body, `Content-Type` and headers. Hop-by-hop headers, `Host`,
//! `Content-Length`, `dapr-app-id` and any `dapr-api-token` are not forwarded; gRPC names are
//! renamed as Dapr does (`grpc-x` becomes `dapr-grpc-x`, `:authority` becomes
//! `dapr-authority`). Verbs outside Dapr's `HTTPExtension` list become `POST`, as Dapr's
//! `WithHTTPExtension` maps them. Whatever status the app answers, even 500, is a successful
//! channel call returning it; only a missing answer is [`ChannelError::Unavailable`].
//!
//! Every request carries `dapr-api-token: <token>` when an app API token is configured
//! (Dapr's `APP_API_TOKEN`); the sidecar's own `DAPR_API_TOKEN` is never sent to the app.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use layotto_core::binding::InputEvent;
use layotto_core::{Error, Metadata};
use layotto_dapr_wire::headers::forwarded;
use layotto_runtime::cloudevent::delivered;
use layotto_runtime::cloudevent::{CLOUDEVENT_CONTENT_TYPE, is_raw_payload};
use layotto_runtime::{
    AppChannel, BindingReply, Body, BulkSubscribe, ChannelError, EventOutcome, InvokeRequest,
    InvokeResponse, RouteRule, SubscriptionType, TopicEvent, TopicSubscription,
};
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt as _;
use layotto_core::file::ByteStream;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde_json::{Map, Value};

/// Where the app lists its subscriptions.
pub const SUBSCRIBE_PATH: &str = "/dapr/subscribe";
/// Header carrying the app API token (Dapr's `security/consts.APITokenHeader`).
pub use layotto_dapr_wire::headers::API_TOKEN_HEADER as APP_API_TOKEN_HEADER;
/// Environment variable holding the app API token (Dapr's `APP_API_TOKEN`).
pub const APP_API_TOKEN_ENV: &str = "APP_API_TOKEN";
/// The CloudEvent `source` Dapr gives events it wraps on the subscriber side
/// (components-contrib `DefaultCloudEventSource`).
pub use layotto_runtime::cloudevent::DEFAULT_EVENT_SOURCE;
/// The message metadata key (and delivery header) naming the pub/sub component (Dapr's
/// `MetadataKeyPubSub`).
pub const PUBSUB_NAME_HEADER: &str = "pubsubName";

/// How long connecting to the app may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Settings of an [`HttpAppChannel`].
#[derive(Clone)]
pub struct HttpAppChannelOptions {
    /// Deadline of one service invocation (default 60 s).
    pub invoke_timeout: Duration,
    /// Deadline of one event delivery and of `GET /dapr/subscribe` (default 30 s); an event
    /// that times out is redelivered.
    pub event_timeout: Duration,
    /// Sent as `dapr-api-token` on every request to the app (Dapr's `APP_API_TOKEN`); `None`
    /// sends no token.
    pub app_api_token: Option<String>,
}

impl Default for HttpAppChannelOptions {
    fn default() -> Self {
        Self {
            invoke_timeout: Duration::from_secs(60),
            event_timeout: Duration::from_secs(30),
            app_api_token: None,
        }
    }
}

impl HttpAppChannelOptions {
    /// The defaults, with the app API token taken from `APP_API_TOKEN` when it is set and not
    /// empty.
    pub fn from_env() -> Self {
        Self {
            app_api_token: std::env::var(APP_API_TOKEN_ENV)
                .ok()
                .filter(|t| !t.is_empty()),
            ..Self::default()
        }
    }
}

impl fmt::Debug for HttpAppChannelOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpAppChannelOptions")
            .field("invoke_timeout", &self.invoke_timeout)
            .field("event_timeout", &self.event_timeout)
            .field(
                "app_api_token",
                &self.app_api_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Calls a Dapr HTTP app at `http://host:port` (see the module documentation for the
/// contract). Connections are made per request from a pool, so an app that starts later is
/// reached.
#[derive(Clone, Debug)]
pub struct HttpAppChannel {
    client: reqwest::Client,
    base: String,
    opts: HttpAppChannelOptions,
    metrics: Option<std::sync::Arc<layotto_runtime::Metrics>>,
    /// Set on every request over the caller's headers (an `HTTPEndpoint`'s `headers`).
    extra_headers: HeaderMap,
    /// Bulk envelopes being filled.
    bulk: std::sync::Arc<crate::bulk::Batches>,
}

/// What the app answered: status and the whole body (or why it could not be read).
struct Answer {
    status: StatusCode,
    body: Result<Bytes, String>,
}

/// What the app answered, its body as it arrives ([`Body::buffered`]).
struct StreamedAnswer {
    status: StatusCode,
    headers: HeaderMap,
    body: Result<Body, String>,
}

/// One call to the app, recorded in the metrics when its answer's body has been read (or
/// dropped unread).
struct Record {
    metrics: std::sync::Arc<layotto_runtime::Metrics>,
    method: Method,
    path: String,
    status: u16,
    sent: std::sync::Arc<AtomicUsize>,
    probe: bool,
    started: std::time::Instant,
}

impl Record {
    fn finish(self, received: usize) {
        if self.probe {
            self.metrics
                .health_probe(false, &self.status.to_string(), self.started.elapsed());
        } else {
            self.metrics.http_client(
                self.method.as_str(),
                &self.path,
                Some(self.status),
                self.sent.load(Ordering::Relaxed),
                received,
                self.started.elapsed(),
            );
        }
    }
}

/// A body stream that counts what passes and records the call at its end.
struct Recorded {
    inner: ByteStream,
    record: Option<Record>,
    received: usize,
}

impl futures::Stream for Recorded {
    type Item = layotto_core::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let next = self.inner.as_mut().poll_next(cx);
        match &next {
            std::task::Poll::Ready(Some(Ok(chunk))) => self.received += chunk.len(),
            std::task::Poll::Ready(_) => {
                if let Some(r) = self.record.take() {
                    r.finish(self.received);
                }
            }
            std::task::Poll::Pending => {}
        }
        next
    }
}

impl Drop for Recorded {
    fn drop(&mut self) {
        if let Some(r) = self.record.take() {
            r.finish(self.received);
        }
    }
}

/// `stream` counting the bytes that pass into `sent`.
fn counted(stream: ByteStream, sent: std::sync::Arc<AtomicUsize>) -> ByteStream {
    stream
        .inspect(move |c| {
            if let Ok(c) = c {
                sent.fetch_add(c.len(), Ordering::Relaxed);
            }
        })
        .boxed()
}

/// A streamed body as an HTTP body reqwest can send (it wants `Sync`; the lock is never
/// contended: polling takes `&mut`).
struct SendBody(std::sync::Mutex<ByteStream>);

impl http_body::Body for SendBody {
    type Data = Bytes;
    type Error = layotto_core::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let stream = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        stream
            .as_mut()
            .poll_next(cx)
            .map(|c| c.map(|c| c.map(http_body::Frame::data)))
    }
}

impl HttpAppChannel {
    /// POSTs `body` (a CloudEvent or a bulk envelope) to the subscription's route with the
    /// `pubsubName` header and `metadata` as headers; returns the app's status and body (an
    /// unreadable body as empty: Dapr takes an unreadable 2xx as success).
    pub(crate) async fn post_event(
        &self,
        sub: &TopicSubscription,
        body: &Value,
        pubsub_name: &str,
        metadata: &[(&str, &str)],
    ) -> Result<(StatusCode, Bytes), ChannelError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| ChannelError::Unavailable(format!("encoding CloudEvent: {e}")))?;
        let url = self.url(&sub.route, "")?;
        let mut headers = forward_headers(
            metadata
                .iter()
                .copied()
                .chain([(PUBSUB_NAME_HEADER, pubsub_name)]),
        );
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(CLOUDEVENT_CONTENT_TYPE),
        );
        let sent = body.len();
        let rb = self
            .request(Method::POST, url, self.opts.event_timeout, headers)
            .body(body);
        let resp = self
            .exchange(rb, &Method::POST, &sub.route, sent, false)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok((resp.status, resp.body.unwrap_or_default()))
    }

    /// A channel to `host:port` (an IPv6 host may be given with or without brackets); no
    /// connection is attempted yet.
    ///
    /// # Errors
    /// Invalid argument when `host:port` is no valid URL authority; internal when the HTTP
    /// client cannot be built.
    pub fn new(host: &str, port: u16, opts: HttpAppChannelOptions) -> Result<Self, Error> {
        if host.is_empty() {
            return Err(Error::invalid("app host is empty"));
        }
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let base = format!("http://{host}:{port}");
        Url::parse(&base).map_err(|e| Error::invalid(format!("app address '{base}': {e}")))?;
        // reqwest's rustls backend needs a process crypto provider even for plain http.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Losing a race against another installer is fine: a provider is then installed.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = reqwest::Client::builder()
            .http1_only()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| Error::internal(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            client,
            base,
            opts,
            metrics: None,
            extra_headers: HeaderMap::new(),
            bulk: std::sync::Arc::default(),
        })
    }

    /// A channel to the service at base URL `base` (used as given: a method is appended after
    /// a `/`) through `client`, setting `headers` on every request over the caller's (a non-Dapr
    /// service: Dapr's `HTTPEndpoint`, or a URL invoked directly).
    pub(crate) fn to_service(
        client: reqwest::Client,
        base: String,
        opts: HttpAppChannelOptions,
        headers: HeaderMap,
    ) -> Self {
        Self {
            client,
            base,
            opts,
            metrics: None,
            extra_headers: headers,
            bulk: std::sync::Arc::default(),
        }
    }

    /// Records every call in `metrics` (`dapr_http_client_*`, `dapr_http_healthprobes_*`).
    #[must_use]
    pub fn with_metrics(mut self, metrics: std::sync::Arc<layotto_runtime::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Sends `rb` (`sent` body bytes, to `path` with verb `method`) and reads the whole
    /// answer, recording the call (a health probe when `probe`).
    async fn exchange(
        &self,
        rb: RequestBuilder,
        method: &Method,
        path: &str,
        sent: usize,
        probe: bool,
    ) -> Result<Answer, reqwest::Error> {
        let sent = std::sync::Arc::new(AtomicUsize::new(sent));
        let a = self
            .exchange_streamed(rb, method, path, sent, probe)
            .await?;
        let body = match a.body {
            Ok(b) => b.collect().await.map_err(|e| e.message),
            Err(e) => Err(e),
        };
        Ok(Answer {
            status: a.status,
            body,
        })
    }

    /// Sends `rb` (to `path` with verb `method`; `sent` counts its body bytes) and reads the
    /// answer's head; its body comes as it arrives. The call is recorded when the body has
    /// been read (a health probe when `probe`).
    async fn exchange_streamed(
        &self,
        rb: RequestBuilder,
        method: &Method,
        path: &str,
        sent: std::sync::Arc<AtomicUsize>,
        probe: bool,
    ) -> Result<StreamedAnswer, reqwest::Error> {
        let started = std::time::Instant::now();
        let mut resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => {
                if let Some(m) = &self.metrics {
                    if probe {
                        m.health_probe(false, "500", started.elapsed());
                    } else {
                        let sent = sent.load(Ordering::Relaxed);
                        m.http_client(method.as_str(), path, None, sent, 0, started.elapsed());
                    }
                }
                return Err(e);
            }
        };
        let status = resp.status();
        // Moved out, not copied: reading the body consumes the response.
        let headers = std::mem::take(resp.headers_mut());
        let chunks = futures::stream::unfold(Some(resp), |resp| async move {
            let mut resp = resp?;
            match resp.chunk().await {
                Ok(Some(c)) => Some((Ok(c), Some(resp))),
                Ok(None) => None,
                Err(e) => Some((Err(Error::unavailable(describe(&e))), None)),
            }
        });
        let record = self.metrics.clone().map(|metrics| Record {
            metrics,
            method: method.clone(),
            path: path.to_owned(),
            status: status.as_u16(),
            sent,
            probe,
            started,
        });
        let recorded = Recorded {
            inner: chunks.boxed(),
            record,
            received: 0,
        };
        let body = Body::buffered(recorded.boxed())
            .await
            .map_err(|e| e.message);
        Ok(StreamedAnswer {
            status,
            headers,
            body,
        })
    }

    /// The app's base URL, `http://host:port`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `base` + `/` (unless `path` has one) + `path` + `?query` (when not empty), as Dapr
    /// builds the URI.
    fn url(&self, path: &str, query: &str) -> Result<Url, ChannelError> {
        let mut s = String::with_capacity(self.base.len() + path.len() + query.len() + 2);
        s.push_str(&self.base);
        if !path.starts_with('/') {
            s.push('/');
        }
        s.push_str(path);
        if !query.is_empty() {
            s.push('?');
            s.push_str(query);
        }
        Url::parse(&s).map_err(|e| ChannelError::Unavailable(format!("invalid app URL '{s}': {e}")))
    }

    /// A request with `headers` plus the app token.
    fn request(
        &self,
        method: Method,
        url: Url,
        timeout: Duration,
        mut headers: HeaderMap,
    ) -> RequestBuilder {
        if let Some(v) = self
            .opts
            .app_api_token
            .as_deref()
            .and_then(|t| HeaderValue::from_str(t).ok())
        {
            headers.insert(HeaderName::from_static(APP_API_TOKEN_HEADER), v);
        }
        // The current span (a delivery's or an invocation's) is the app's parent.
        if let Some((parent, state)) = layotto_runtime::trace::current_traceparent() {
            if let Ok(v) = HeaderValue::from_str(&parent) {
                headers.insert(HeaderName::from_static("traceparent"), v);
            }
            match HeaderValue::from_str(&state) {
                Ok(v) if !state.is_empty() => {
                    headers.insert(HeaderName::from_static("tracestate"), v);
                }
                _ => {}
            }
        }
        for name in self.extra_headers.keys() {
            headers.remove(name);
        }
        for (name, value) in &self.extra_headers {
            headers.append(name, value.clone());
        }
        self.client
            .request(method, url)
            .timeout(timeout)
            .headers(headers)
    }
}

/// The error and its causes, joined (reqwest's top-level message hides "connection refused").
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

fn unavailable(e: &reqwest::Error) -> ChannelError {
    ChannelError::Unavailable(describe(e))
}

/// `headers` minus those not forwarded, with gRPC names renamed as Dapr's
/// `ReservedGRPCMetadataToDaprPrefixHeader` does; invalid names or values are left out.
fn forward_headers<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (k, v) in headers {
        let k = k.to_ascii_lowercase();
        let name = match k.as_str() {
            ":method" | ":scheme" | ":path" | ":authority" => format!("dapr-{}", &k[1..]),
            _ if k.starts_with(':') => continue,
            _ if k.starts_with("grpc-") => format!("dapr-{k}"),
            _ => k,
        };
        if !forwarded(&name) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            out.append(n, v);
        }
    }
    out
}

/// Response headers worth passing back: all but connection-specific ones, `Content-Length`
/// and `Content-Type` (carried in [`InvokeResponse::content_type`]).
fn response_headers(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .filter(|(n, _)| forwarded(n.as_str()))
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect()
}

/// Dapr's `HTTPExtension` verbs; anything else is `POST`, as Dapr's `WithHTTPExtension` maps
/// unknown verbs.
fn verb(v: &str) -> Method {
    match v.to_ascii_uppercase().as_str() {
        "GET" => Method::GET,
        "HEAD" => Method::HEAD,
        "PUT" => Method::PUT,
        "DELETE" => Method::DELETE,
        "OPTIONS" => Method::OPTIONS,
        "TRACE" => Method::TRACE,
        "PATCH" => Method::PATCH,
        _ => Method::POST,
    }
}

/// `m[name]`, else the first key equal to `name` ignoring ASCII case (Go's `encoding/json`).
fn field<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    m.get(name).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// A string field: absent and `null` are empty, other types are an error (Go's decoder).
fn str_field(m: &Map<String, Value>, name: &str, at: &str) -> Result<String, String> {
    match field(m, name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("{at}: '{name}' is not a string: {other}")),
    }
}

/// The routing rules of one `/dapr/subscribe` item, the default route last (empty: none).
fn select_route(m: &Map<String, Value>, at: &str) -> Result<Vec<RouteRule>, String> {
    let route = str_field(m, "route", at)?;
    let mut rules = Vec::new();
    let mut default = String::new();
    match field(m, "routes") {
        None | Some(Value::Null) => {}
        Some(Value::Object(routes)) => {
            default = str_field(routes, "default", at)?;
            match field(routes, "rules") {
                None | Some(Value::Null) => {}
                Some(Value::Array(items)) => {
                    for (j, r) in items.iter().enumerate() {
                        let rat = format!("{at}, rule {j}");
                        let Value::Object(r) = r else {
                            return Err(format!("{rat}: not an object"));
                        };
                        rules.push(RouteRule {
                            match_: str_field(r, "match", &rat)?.trim().to_owned(),
                            path: str_field(r, "path", &rat)?,
                        });
                    }
                }
                Some(other) => {
                    return Err(format!("{at}: 'routes.rules' is not an array: {other}"));
                }
            }
        }
        Some(other) => return Err(format!("{at}: 'routes' is not an object: {other}")),
    }
    // daprd: the default route, else the v1 route, becomes a last rule that always matches.
    if !default.is_empty() {
        rules.push(RouteRule {
            match_: String::new(),
            path: default,
        });
    } else if !route.is_empty() {
        rules.push(RouteRule {
            match_: String::new(),
            path: route,
        });
    }
    Ok(rules)
}

/// The app's answer for entry `id` of a bulk delivery (`{"statuses": [{"entryId", "status"}]}`);
/// an entry the app did not answer for is retried, never taken as processed.
pub(crate) fn bulk_outcome(body: &[u8], id: &str) -> EventOutcome {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let statuses = parsed
        .as_ref()
        .and_then(|v| v.as_object())
        .and_then(|m| field(m, "statuses"))
        .and_then(Value::as_array);
    let status = statuses.and_then(|all| {
        all.iter().find_map(|s| {
            let s = s.as_object()?;
            let entry = field(s, "entryId").and_then(Value::as_str)?;
            (entry == id).then(|| field(s, "status").and_then(Value::as_str).unwrap_or(""))
        })
    });
    match status {
        Some("SUCCESS") => EventOutcome::Success,
        Some("DROP") => EventOutcome::Drop,
        Some(other) => {
            tracing::warn!(%id, status = %other, "bulk delivery: app asked to retry the entry");
            EventOutcome::Retry
        }
        None => {
            tracing::warn!(%id, "bulk delivery: app answered no status for the entry; retrying");
            EventOutcome::Retry
        }
    }
}

/// Parses the `/dapr/subscribe` answer (see the module documentation).
fn parse_subscriptions(body: &[u8]) -> Result<Vec<TopicSubscription>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let items = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(a)) => a,
        Ok(Value::Null) => return Ok(Vec::new()),
        Ok(other) => return Err(format!("expected a JSON array, got {other}")),
        Err(e) => return Err(format!("not JSON: {e}")),
    };
    let mut subs = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("subscription {i}");
        let Value::Object(m) = item else {
            return Err(format!("{at}: not an object"));
        };
        let topic = str_field(m, "topic", &at)?;
        let mut metadata = Metadata::new();
        match field(m, "metadata") {
            None | Some(Value::Null) => {}
            Some(Value::Object(md)) => {
                for (k, v) in md {
                    let Value::String(v) = v else {
                        return Err(format!("{at}: metadata '{k}' is not a string: {v}"));
                    };
                    metadata.insert(k.clone(), v.clone());
                }
            }
            Some(other) => return Err(format!("{at}: 'metadata' is not an object: {other}")),
        }
        let rules = select_route(m, &at)?;
        if rules.is_empty() {
            tracing::warn!(%topic, "app subscription has no route; skipping it");
            continue;
        }
        let bulk = match field(m, "bulkSubscribe") {
            Some(Value::Object(b)) => {
                let count = |k: &str| {
                    field(b, k)
                        .and_then(Value::as_u64)
                        .and_then(|n| u32::try_from(n).ok())
                        .unwrap_or(0)
                };
                BulkSubscribe {
                    enabled: matches!(field(b, "enabled"), Some(Value::Bool(true))),
                    max_messages_count: count("maxMessagesCount"),
                    max_await_duration_ms: count("maxAwaitDurationMs"),
                }
            }
            _ => BulkSubscribe::default(),
        };
        subs.push(TopicSubscription {
            pubsub_name: str_field(m, "pubsubname", &at)?,
            topic,
            metadata,
            route: String::new(),
            rules,
            dead_letter_topic: str_field(m, "deadLetterTopic", &at)?,
            bulk,
            type_: SubscriptionType::Programmatic,
        });
    }
    Ok(subs)
}

/// Maps the app's answer to an event (see the table in the module documentation). The body
/// is read as Go's `json.Decoder` reads it: the first JSON value only, and anything that does
/// not decode into `{"status": string}` counts as no status.
pub(crate) fn outcome(status: StatusCode, body: &[u8], id: &str) -> EventOutcome {
    if status.is_success() {
        let first = serde_json::Deserializer::from_slice(body)
            .into_iter::<Value>()
            .next();
        let Some(Ok(Value::Object(m))) = first else {
            return EventOutcome::Success;
        };
        return match field(&m, "status") {
            Some(Value::String(s)) => match s.as_str() {
                "" | "SUCCESS" => EventOutcome::Success,
                "RETRY" => EventOutcome::Retry,
                "DROP" => EventOutcome::Drop,
                other => {
                    tracing::warn!(%id, status = %other, "unknown status returned by app for event; retrying");
                    EventOutcome::Retry
                }
            },
            _ => EventOutcome::Success,
        };
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
    if status == StatusCode::NOT_FOUND {
        tracing::error!(%id, %status, body = %text, "non-retriable error returned by app for event; dropping it");
        EventOutcome::Drop
    } else {
        tracing::warn!(%id, %status, body = %text, "retriable error returned by app for event");
        EventOutcome::Retry
    }
}

#[async_trait]
impl AppChannel for HttpAppChannel {
    async fn list_subscriptions(&self) -> Result<Vec<TopicSubscription>, ChannelError> {
        let url = self.url(SUBSCRIBE_PATH, "")?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let rb = self.request(Method::GET, url.clone(), self.opts.event_timeout, headers);
        let resp = self
            .exchange(rb, &Method::GET, SUBSCRIBE_PATH, 0, false)
            .await
            .map_err(|e| unavailable(&e))?;
        let status = resp.status;
        if status == StatusCode::NOT_FOUND {
            tracing::debug!("app has no {SUBSCRIBE_PATH}: no subscriptions");
            return Ok(Vec::new());
        }
        if status.is_server_error() {
            return Err(ChannelError::Unavailable(format!(
                "GET {url}: app answered {status}"
            )));
        }
        if status != StatusCode::OK {
            tracing::error!(%status, "app returned an unexpected status from {SUBSCRIBE_PATH}; no subscriptions");
            return Ok(Vec::new());
        }
        let body = resp.body.map_err(ChannelError::Unavailable)?;
        parse_subscriptions(&body)
            .map_err(|e| ChannelError::Unavailable(format!("GET {url}: malformed answer: {e}")))
    }

    async fn deliver(
        &self,
        sub: &TopicSubscription,
        ev: &TopicEvent,
    ) -> Result<EventOutcome, ChannelError> {
        let ce = delivered(ev, is_raw_payload(&sub.metadata));
        if sub.bulk.enabled {
            return self.bulk.deliver(self, sub, ev, ce).await;
        }
        let metadata: Vec<(&str, &str)> = ev
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (status, body) = self
            .post_event(sub, &Value::Object(ce), &ev.pubsub_name, &metadata)
            .await?;
        Ok(outcome(status, &body, &ev.id))
    }

    async fn binding_subscribed(&self, _name: &str, route: &str) -> Result<bool, ChannelError> {
        let url = self.url(route, "")?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let rb = self.request(Method::OPTIONS, url, self.opts.event_timeout, headers);
        let resp = self
            .exchange(rb, &Method::OPTIONS, route, 0, false)
            .await
            .map_err(|e| unavailable(&e))?;
        // daprd: a 2xx, or 405 from a router that serves the path for POST only.
        Ok(resp.status.is_success() || resp.status == StatusCode::METHOD_NOT_ALLOWED)
    }

    async fn deliver_binding(
        &self,
        _name: &str,
        route: &str,
        event: &InputEvent,
    ) -> Result<BindingReply, ChannelError> {
        let url = self.url(route, "")?;
        let mut headers =
            forward_headers(event.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let sent = event.data.len();
        let rb = self
            .request(Method::POST, url, self.opts.event_timeout, headers)
            .body(event.data.clone());
        let resp = self
            .exchange(rb, &Method::POST, route, sent, false)
            .await
            .map_err(|e| unavailable(&e))?;
        let body = resp.body.map_err(ChannelError::Unavailable)?;
        if resp.status.is_success() {
            Ok(BindingReply {
                data: body,
                ..BindingReply::default()
            })
        } else {
            let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
            Err(ChannelError::Failed(format!(
                "POST {route}: app answered {}: {text}",
                resp.status
            )))
        }
    }

    async fn health(&self, path: &str) -> Result<(), ChannelError> {
        let url = self.url(path, "")?;
        let rb = self.request(Method::GET, url, self.opts.event_timeout, HeaderMap::new());
        let resp = self
            .exchange(rb, &Method::GET, path, 0, true)
            .await
            .map_err(|e| unavailable(&e))?;
        if resp.status.is_success() {
            Ok(())
        } else {
            Err(ChannelError::Unavailable(format!(
                "app health check {path} answered {}",
                resp.status
            )))
        }
    }

    async fn invoke(&self, req: &InvokeRequest) -> Result<InvokeResponse, ChannelError> {
        let url = self.url(&req.method, &req.query)?;
        let mut headers =
            forward_headers(req.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if let Ok(ct) = HeaderValue::from_str(&req.content_type)
            && !req.content_type.is_empty()
        {
            headers.insert(CONTENT_TYPE, ct);
        }
        let method = verb(&req.http_verb);
        let mut rb = self.request(method.clone(), url, self.opts.invoke_timeout, headers);
        let sent = std::sync::Arc::new(AtomicUsize::new(0));
        if let Some(data) = req.data.as_bytes() {
            sent.store(data.len(), Ordering::Relaxed);
            if !data.is_empty() {
                rb = rb.body(data.clone());
            }
        } else {
            let stream = counted(req.data.clone().into_stream(), sent.clone());
            rb = rb.body(reqwest::Body::wrap(SendBody(std::sync::Mutex::new(stream))));
        }
        let resp = self
            .exchange_streamed(rb, &method, &req.method, sent, false)
            .await
            .map_err(|e| unavailable(&e))?;
        let content_type = resp
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        Ok(InvokeResponse {
            status: resp.status.as_u16(),
            content_type,
            data: resp.body.map_err(ChannelError::Unavailable)?,
            headers: response_headers(&resp.headers),
            grpc_status: None,
        })
    }
}

#[cfg(test)]
mod bulk_tests {
    use super::{EventOutcome, bulk_outcome};

    #[test]
    fn bulk_answers_decide_per_entry_and_silence_retries() {
        let ans = |s: &str| bulk_outcome(s.as_bytes(), "e1");
        assert_eq!(
            ans(r#"{"statuses":[{"entryId":"e1","status":"SUCCESS"}]}"#),
            EventOutcome::Success
        );
        assert_eq!(
            ans(r#"{"statuses":[{"entryId":"e1","status":"DROP"}]}"#),
            EventOutcome::Drop
        );
        assert_eq!(
            ans(r#"{"statuses":[{"entryId":"e1","status":"RETRY"}]}"#),
            EventOutcome::Retry
        );
        // The JS SDK's answer when it found no entries: nothing was processed.
        assert_eq!(ans(r#"{"statuses":[]}"#), EventOutcome::Retry);
        assert_eq!(
            ans(r#"{"statuses":[{"entryId":"other","status":"SUCCESS"}]}"#),
            EventOutcome::Retry
        );
        assert_eq!(ans(""), EventOutcome::Retry);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Bytes as AxBytes;
    use axum::http::{HeaderMap as AxHeaders, Method as AxMethod, StatusCode as AxStatus, Uri};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};

    use super::*;

    /// A request the test app received.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }
        fn json(&self) -> Map<String, Value> {
            match serde_json::from_slice(&self.body) {
                Ok(Value::Object(m)) => m,
                other => panic!("body is no JSON object: {other:?}"),
            }
        }
    }

    type Log = Arc<Mutex<Vec<Seen>>>;

    fn record(log: &Log, method: &AxMethod, uri: &Uri, headers: &AxHeaders, body: &[u8]) {
        let headers = headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        log.lock().expect("log").push(Seen {
            method: method.to_string(),
            path: uri.path().to_owned(),
            headers,
            body: body.to_vec(),
        });
    }

    /// Serves `app` on 127.0.0.1 and returns the port.
    async fn serve(app: Router) -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        port
    }

    /// A port nothing listens on.
    /// A port nothing listens on, held (bound, never listening) so that no other test takes
    /// it while the socket lives: connections to it are refused.
    fn dead_port() -> (tokio::net::TcpSocket, u16) {
        let s = tokio::net::TcpSocket::new_v4().expect("socket");
        s.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let port = s.local_addr().expect("addr").port();
        (s, port)
    }

    fn channel(port: u16, token: Option<&str>) -> HttpAppChannel {
        HttpAppChannel::new(
            "127.0.0.1",
            port,
            HttpAppChannelOptions {
                app_api_token: token.map(str::to_owned),
                invoke_timeout: Duration::from_secs(5),
                event_timeout: Duration::from_secs(5),
            },
        )
        .expect("channel")
    }

    /// Serves `GET /dapr/subscribe` answering `status` and `body`, recording requests.
    async fn subscribe_app(status: u16, body: &'static str) -> (u16, Log) {
        let log: Log = Arc::default();
        let l = log.clone();
        let app = Router::new().route(
            SUBSCRIBE_PATH,
            get(move |m: AxMethod, u: Uri, h: AxHeaders| {
                let l = l.clone();
                async move {
                    record(&l, &m, &u, &h, b"");
                    (
                        AxStatus::from_u16(status).expect("status"),
                        [("content-type", "application/json")],
                        body,
                    )
                }
            }),
        );
        (serve(app).await, log)
    }

    /// An app whose event routes answer every status variant; `/missing` is not served (404).
    async fn events_app() -> (u16, Log) {
        let log: Log = Arc::default();
        let answer = |status: u16, body: &'static str| {
            let l = log.clone();
            post(move |m: AxMethod, u: Uri, h: AxHeaders, b: AxBytes| {
                let l = l.clone();
                async move {
                    record(&l, &m, &u, &h, &b);
                    (AxStatus::from_u16(status).expect("status"), body).into_response()
                }
            })
        };
        let app = Router::new()
            .route("/success", answer(200, r#"{"status":"SUCCESS"}"#))
            .route("/retry", answer(200, r#"{"status":"RETRY"}"#))
            .route("/drop", answer(200, r#"{"status":"DROP"}"#))
            .route("/drop-created", answer(201, r#"{"status":"DROP"}"#))
            .route("/empty", answer(200, ""))
            .route("/no-status", answer(200, r#"{"message":"ok"}"#))
            .route("/null-status", answer(200, r#"{"status":null}"#))
            .route("/blank-status", answer(200, r#"{"status":""}"#))
            .route("/not-json", answer(200, "thanks"))
            .route("/array", answer(200, r#"["DROP"]"#))
            .route("/unknown", answer(200, r#"{"status":"MAYBE"}"#))
            .route("/lower", answer(200, r#"{"status":"drop"}"#))
            .route("/key-case", answer(200, r#"{"Status":"DROP"}"#))
            .route("/trailing", answer(200, r#"{"status":"RETRY"} trailing"#))
            .route("/error", answer(500, "boom"))
            .route("/unavailable", answer(503, ""))
            .route("/teapot", answer(418, ""))
            .route("/bad-request", answer(400, ""));
        (serve(app).await, log)
    }

    /// Echoes the request as JSON; header `x-status` picks the answer's status.
    async fn echo_app() -> u16 {
        async fn echo(m: AxMethod, u: Uri, h: AxHeaders, b: AxBytes) -> Response {
            let status = h
                .get("x-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.parse().ok())
                .unwrap_or(200);
            let headers: Map<String, Value> = h
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        Value::String(v.to_str().unwrap_or_default().to_owned()),
                    )
                })
                .collect();
            let body = serde_json::json!({
                "method": m.as_str(),
                "path": u.path(),
                "query": u.query().unwrap_or(""),
                "headers": headers,
                "body": String::from_utf8_lossy(&b),
            });
            (
                AxStatus::from_u16(status).expect("status"),
                [("content-type", "application/json"), ("x-echo", "yes")],
                body.to_string(),
            )
                .into_response()
        }
        serve(Router::new().fallback(echo)).await
    }

    fn sub(route: &str) -> TopicSubscription {
        TopicSubscription {
            pubsub_name: "ps".into(),
            topic: "orders".into(),
            metadata: Metadata::new(),
            route: route.into(),
            ..TopicSubscription::default()
        }
    }

    fn event(content_type: &str, data: &[u8]) -> TopicEvent {
        TopicEvent {
            id: "ev-1".into(),
            source: "publisher".into(),
            type_: "com.dapr.event.sent".into(),
            spec_version: "1.0".into(),
            data_content_type: content_type.into(),
            data: Bytes::copy_from_slice(data),
            topic: "orders".into(),
            pubsub_name: "ps".into(),
            metadata: Metadata::new(),
            ..TopicEvent::default()
        }
    }

    #[tokio::test]
    async fn lists_v1_and_v2_subscriptions() {
        let (port, log) = subscribe_app(
            200,
            r#"[
              {"pubsubname":"ps","topic":"orders","route":"orders-handler",
               "metadata":{"rawPayload":"true"},"deadLetterTopic":"poison"},
              {"pubsubName":"ps","topic":"v2",
               "routes":{"rules":[{"match":"event.type == \"x\"","path":"/x"}],"default":"/v2"}},
              {"pubsubname":"ps","topic":"catch-all",
               "routes":{"rules":[{"match":"event.type == \"x\"","path":"/x"},
                                  {"match":"  ","path":"/all"}],"default":"/d"}},
              {"pubsubname":"ps","topic":"both","route":"/r","routes":{"default":"/d"}},
              {"pubsubname":"ps","topic":"v1-in-v2","route":"/r","routes":{"rules":[]}},
              {"pubsubname":"ps","topic":"cel-only",
               "routes":{"rules":[{"match":"event.type == \"x\"","path":"/x"}]}},
              {"pubsubname":"ps","topic":"no-route"}
            ]"#,
        )
        .await;
        let subs = channel(port, Some("app-secret"))
            .list_subscriptions()
            .await
            .expect("list");
        let got: Vec<(&str, Vec<(&str, &str)>)> = subs
            .iter()
            .map(|s| {
                let rules = s.rules.iter();
                let rules = rules.map(|r| (r.match_.as_str(), r.path.as_str()));
                (s.topic.as_str(), rules.collect())
            })
            .collect();
        let x = r#"event.type == "x""#;
        assert_eq!(
            got,
            [
                ("orders", vec![("", "orders-handler")]),
                ("v2", vec![(x, "/x"), ("", "/v2")]),
                ("catch-all", vec![(x, "/x"), ("", "/all"), ("", "/d")]),
                ("both", vec![("", "/d")]),
                ("v1-in-v2", vec![("", "/r")]),
                ("cel-only", vec![(x, "/x")]),
            ]
        );
        assert!(subs.iter().all(|s| s.pubsub_name == "ps"));
        assert_eq!(
            (
                subs[0].dead_letter_topic.as_str(),
                subs[1].dead_letter_topic.as_str()
            ),
            ("poison", "")
        );
        assert_eq!(
            subs[0].metadata.get("rawPayload").map(String::as_str),
            Some("true")
        );
        assert!(subs[1].metadata.is_empty());
        let seen = log.lock().expect("log").clone();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].method, "GET");
        assert_eq!(seen[0].header(APP_API_TOKEN_HEADER), Some("app-secret"));
    }

    #[tokio::test]
    async fn subscription_answers_without_subscriptions() {
        for (status, body) in [
            (404, "not found"),
            (200, ""),
            (200, "  \n"),
            (200, "null"),
            (200, "[]"),
            (403, "no"),
        ] {
            let (port, _) = subscribe_app(status, body).await;
            let subs = channel(port, None).list_subscriptions().await;
            assert_eq!(subs, Ok(vec![]), "status {status} body {body:?}");
        }
        // An app without the route at all (axum answers 404).
        let port = serve(Router::new()).await;
        assert_eq!(channel(port, None).list_subscriptions().await, Ok(vec![]));
    }

    #[tokio::test]
    async fn subscription_failures_are_unavailable() {
        for (status, body) in [
            (500, "[]"),
            (503, ""),
            (200, "{not json"),
            (200, r#"{"topic":"t"}"#),
            (200, r#"[{"topic":1,"route":"/r"}]"#),
            (200, r#"[{"topic":"t","route":"/r","metadata":{"n":1}}]"#),
            (200, r#"["t"]"#),
        ] {
            let (port, _) = subscribe_app(status, body).await;
            let r = channel(port, None).list_subscriptions().await;
            assert!(
                matches!(r, Err(ChannelError::Unavailable(_))),
                "status {status} body {body:?}: {r:?}"
            );
        }
    }

    #[tokio::test]
    async fn maps_event_answers_like_dapr() {
        let (port, _) = events_app().await;
        let ch = channel(port, None);
        let ev = event("application/json", br#"{"a":1}"#);
        for (route, want) in [
            ("/success", EventOutcome::Success),
            ("/retry", EventOutcome::Retry),
            ("/drop", EventOutcome::Drop),
            ("/drop-created", EventOutcome::Drop),
            ("/empty", EventOutcome::Success),
            ("/no-status", EventOutcome::Success),
            ("/null-status", EventOutcome::Success),
            ("/blank-status", EventOutcome::Success),
            ("/not-json", EventOutcome::Success),
            ("/array", EventOutcome::Success),
            ("/unknown", EventOutcome::Retry),
            ("/lower", EventOutcome::Retry),
            ("/key-case", EventOutcome::Drop),
            ("/trailing", EventOutcome::Retry),
            ("/missing", EventOutcome::Drop),
            ("/error", EventOutcome::Retry),
            ("/unavailable", EventOutcome::Retry),
            ("/teapot", EventOutcome::Retry),
            ("/bad-request", EventOutcome::Retry),
        ] {
            assert_eq!(ch.deliver(&sub(route), &ev).await, Ok(want), "{route}");
        }
    }

    #[tokio::test]
    async fn posts_cloudevents_with_headers() {
        let (port, log) = events_app().await;
        let ch = channel(port, Some("app-secret"));
        let mut ev = event("application/json", br#"{"a":1}"#);
        ev.metadata
            .insert("traceparent".into(), "00-abc-def-01".into());
        ev.metadata.insert("x-custom".into(), "v".into());
        ev.metadata
            .insert("Content-Type".into(), "text/evil".into());
        // A route without a leading slash gets one.
        assert_eq!(
            ch.deliver(&sub("success"), &ev).await,
            Ok(EventOutcome::Success)
        );
        let seen = log.lock().expect("log")[0].clone();
        assert_eq!(
            (seen.method.as_str(), seen.path.as_str()),
            ("POST", "/success")
        );
        assert_eq!(seen.header("content-type"), Some(CLOUDEVENT_CONTENT_TYPE));
        assert_eq!(seen.header("dapr-api-token"), Some("app-secret"));
        assert_eq!(seen.header("pubsubname"), Some("ps"));
        assert_eq!(seen.header("x-custom"), Some("v"));
        assert_eq!(seen.header("traceparent"), Some("00-abc-def-01"));
        let ce = seen.json();
        assert_eq!(ce["id"], "ev-1");
        assert_eq!(ce["source"], "publisher");
        assert_eq!(ce["type"], "com.dapr.event.sent");
        assert_eq!(ce["specversion"], "1.0");
        assert_eq!(ce["datacontenttype"], "application/json");
        assert_eq!(ce["data"], serde_json::json!({"a": 1}));
        assert!(!ce.contains_key("data_base64"));
        assert_eq!(ce["topic"], "orders");
        assert_eq!(ce["pubsubname"], "ps");
        assert_eq!(ce["traceparent"], "00-abc-def-01");
        assert_eq!(ce["traceid"], "00-abc-def-01");
    }

    #[tokio::test]
    async fn encodes_text_binary_and_raw_payloads() {
        let (port, log) = events_app().await;
        let ch = channel(port, None);
        let body = |i: usize| log.lock().expect("log")[i].json();

        let text = event("text/plain", b"hello");
        ch.deliver(&sub("/success"), &text).await.expect("text");
        assert_eq!(body(0)["data"], "hello");
        assert_eq!(log.lock().expect("log")[0].header("dapr-api-token"), None);

        let bin = event("application/octet-stream", &[0, 159, 146, 150]);
        ch.deliver(&sub("/success"), &bin).await.expect("binary");
        assert_eq!(body(1)["data_base64"], "AJ+Slg==");
        assert!(!body(1).contains_key("data"));

        let bad_json = event("application/json", b"not json");
        ch.deliver(&sub("/success"), &bad_json)
            .await
            .expect("bad json");
        assert_eq!(body(2)["data"], "not json");

        let mut untyped = event("", br#"[1,2]"#);
        untyped.id.clear();
        untyped.source.clear();
        ch.deliver(&sub("/success"), &untyped)
            .await
            .expect("untyped");
        assert_eq!(body(3)["data"], serde_json::json!([1, 2]));
        assert_eq!(body(3)["source"], DEFAULT_EVENT_SOURCE);
        assert!(!body(3)["id"].as_str().unwrap_or("").is_empty());
        assert!(!body(3).contains_key("datacontenttype"));

        let mut raw_sub = sub("/success");
        raw_sub
            .metadata
            .insert(layotto_runtime::RAW_PAYLOAD_KEY.into(), "true".into());
        let raw = event("application/octet-stream", b"raw bytes");
        ch.deliver(&raw_sub, &raw).await.expect("raw");
        let ce = body(4);
        assert_eq!(ce["data_base64"], "cmF3IGJ5dGVz");
        assert_eq!(ce["datacontenttype"], "application/octet-stream");
        assert_eq!(ce["source"], DEFAULT_EVENT_SOURCE);
        assert_eq!(ce["type"], layotto_runtime::cloudevent::DEFAULT_EVENT_TYPE);
        assert_eq!(ce["topic"], "orders");
        assert_eq!(ce["pubsubname"], "ps");
        assert_eq!(
            log.lock().expect("log")[4].header("content-type"),
            Some(CLOUDEVENT_CONTENT_TYPE)
        );
    }

    #[tokio::test]
    async fn invokes_with_verb_path_query_headers_and_body() {
        let port = echo_app().await;
        let ch = channel(port, Some("app-secret"));
        let req = InvokeRequest {
            method: "orders/1".into(),
            http_verb: "PUT".into(),
            query: "a=1&b=x%20y".into(),
            content_type: "text/plain".into(),
            data: Bytes::from_static(b"payload").into(),
            headers: vec![
                ("x-custom".into(), "v1".into()),
                ("x-multi".into(), "a".into()),
                ("x-multi".into(), "b".into()),
                ("keep-alive".into(), "timeout=5".into()),
                ("proxy-authorization".into(), "secret".into()),
                ("dapr-api-token".into(), "sidecar-secret".into()),
                ("dapr-app-id".into(), "me".into()),
                ("grpc-timeout".into(), "5S".into()),
                (":authority".into(), "localhost:50001".into()),
                ("bad header".into(), "x".into()),
            ],
        };
        let resp = ch.invoke(&req).await.expect("invoke");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.content_type, "application/json");
        assert!(resp.headers.contains(&("x-echo".into(), "yes".into())));
        assert!(
            !resp
                .headers
                .iter()
                .any(|(k, _)| k == "content-type" || k == "content-length")
        );
        let echo: Value =
            serde_json::from_slice(resp.data.as_bytes().expect("whole")).expect("json");
        assert_eq!(echo["method"], "PUT");
        assert_eq!(echo["path"], "/orders/1");
        assert_eq!(echo["query"], "a=1&b=x%20y");
        assert_eq!(echo["body"], "payload");
        let h = &echo["headers"];
        assert_eq!(h["content-type"], "text/plain");
        assert_eq!(h["x-custom"], "v1");
        assert_eq!(h["dapr-api-token"], "app-secret");
        assert_eq!(h["dapr-grpc-timeout"], "5S");
        assert_eq!(h["dapr-authority"], "localhost:50001");
        for absent in [
            "keep-alive",
            "proxy-authorization",
            "dapr-app-id",
            "grpc-timeout",
        ] {
            assert!(h.get(absent).is_none(), "{absent} forwarded");
        }

        // Without an app token none is sent, whatever the caller's headers say.
        let resp = channel(port, None).invoke(&req).await.expect("invoke");
        let echo: Value =
            serde_json::from_slice(resp.data.as_bytes().expect("whole")).expect("json");
        assert!(echo["headers"].get("dapr-api-token").is_none());
    }

    #[tokio::test]
    async fn invoke_passes_app_errors_and_defaults_the_verb() {
        let port = echo_app().await;
        let ch = channel(port, None);
        let req = InvokeRequest {
            method: "/fail".into(),
            headers: vec![("x-status".into(), "500".into())],
            ..Default::default()
        };
        let resp = ch.invoke(&req).await.expect("a 500 is an answer");
        assert_eq!(resp.status, 500);
        let echo: Value =
            serde_json::from_slice(resp.data.as_bytes().expect("whole")).expect("json");
        // No verb (or an unknown one) is POST, as Dapr maps it; a leading slash is kept single.
        assert_eq!(echo["method"], "POST");
        assert_eq!(echo["path"], "/fail");
        assert_eq!(echo["query"], "");
        assert!(echo["headers"].get("content-type").is_none());

        let get = InvokeRequest {
            method: "items".into(),
            http_verb: "get".into(),
            ..Default::default()
        };
        let echo: Value = serde_json::from_slice(
            ch.invoke(&get)
                .await
                .expect("get")
                .data
                .as_bytes()
                .expect("whole"),
        )
        .expect("json");
        assert_eq!(echo["method"], "GET");
        assert_eq!(echo["path"], "/items");
    }

    #[tokio::test]
    async fn nothing_listening_is_unavailable() {
        let (_held, port) = dead_port();
        let ch = channel(port, None);
        let r = ch.list_subscriptions().await;
        let Err(ChannelError::Unavailable(msg)) = r else {
            panic!("list: {r:?}");
        };
        assert!(msg.to_lowercase().contains("connect"), "{msg}");
        assert!(matches!(
            ch.deliver(&sub("/x"), &event("text/plain", b"x")).await,
            Err(ChannelError::Unavailable(_))
        ));
        assert!(matches!(
            ch.invoke(&InvokeRequest {
                method: "m".into(),
                ..Default::default()
            })
            .await,
            Err(ChannelError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn slow_app_times_out_as_unavailable() {
        let app = Router::new().route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                ""
            }),
        );
        let port = serve(app).await;
        let ch = HttpAppChannel::new(
            "127.0.0.1",
            port,
            HttpAppChannelOptions {
                event_timeout: Duration::from_millis(200),
                ..Default::default()
            },
        )
        .expect("channel");
        assert!(matches!(
            ch.deliver(&sub("/slow"), &event("text/plain", b"x")).await,
            Err(ChannelError::Unavailable(_))
        ));
    }

    #[test]
    fn addresses_and_options() {
        assert_eq!(
            HttpAppChannel::new("::1", 3000, HttpAppChannelOptions::default())
                .expect("v6")
                .base_url(),
            "http://[::1]:3000"
        );
        assert_eq!(
            HttpAppChannel::new("localhost", 80, HttpAppChannelOptions::default())
                .expect("name")
                .base_url(),
            "http://localhost:80"
        );
        assert!(HttpAppChannel::new("", 80, HttpAppChannelOptions::default()).is_err());
        assert!(HttpAppChannel::new("a b", 80, HttpAppChannelOptions::default()).is_err());
        let opts = HttpAppChannelOptions {
            app_api_token: Some("s3cret".into()),
            ..Default::default()
        };
        assert!(!format!("{opts:?}").contains("s3cret"));
        assert_eq!(opts.invoke_timeout, Duration::from_secs(60));
        assert_eq!(opts.event_timeout, Duration::from_secs(30));
        for (v, raw) in [
            ("true", true),
            ("1", true),
            ("True", true),
            ("yes", false),
            ("false", false),
        ] {
            let md = Metadata::from([(layotto_runtime::RAW_PAYLOAD_KEY.to_owned(), v.to_owned())]);
            assert_eq!(is_raw_payload(&md), raw, "{v}");
        }
    }
}
