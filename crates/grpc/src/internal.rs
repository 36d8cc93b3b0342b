//! Sidecar-to-sidecar service invocation: Dapr's `dapr.proto.internals.v1.ServiceInvocation`
//! on the internal gRPC port (`--dapr-internal-grpc-port`), as daprd v1.14 speaks it
//! (`dapr/dapr:pkg/api/grpc/daprinternal.go` serves it, `pkg/messaging/direct_messaging.go`
//! calls it).
//!
//! - [`routes`]: [`InternalService`] serves `CallLocal` and `CallLocalStream` by invoking this sidecar's own
//!   app ([`Runtime::invoke_local`]); actor rpcs answer `UNIMPLEMENTED`.
//! - [`InternalClient`] is the runtime's [`RemoteChannel`]: `CallLocalStream` first (the body in
//!   chunks), `CallLocal` when the callee answers `UNIMPLEMENTED`, as daprd does.
//!
//! On the wire: the caller's headers (HTTP) or metadata (gRPC) travel in
//! `InternalInvokeRequest.metadata`, the verb and query string in `message.http_extension`;
//! the callee's answer carries the app's HTTP status in `status.code` (a gRPC app's code when
//! below 100, which the caller maps to an HTTP status), its headers in `headers`.
//! Stream chunks are numbered by `seq` from 0; daprd sends 2 KiB chunks, this side 64 KiB.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt as _;
use layotto_core::ErrorKind;
use layotto_core::file::ByteStream;
use layotto_proto::dapr::proto::common::v1 as common;
use layotto_proto::dapr::proto::internals::v1 as internals;
use layotto_runtime::{
    Body, ChannelError, GrpcStatus, InvokeRequest, InvokeResponse, RemoteChannel, Runtime,
};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status, Streaming};

use internals::service_invocation_client::ServiceInvocationClient;
use internals::service_invocation_server::{ServiceInvocation, ServiceInvocationServer};

use crate::BoxStream;

/// Bytes of body per stream message this side sends.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// The largest gRPC message for bodies of up to `max_body_bytes`: the body and 1 MiB for the
/// rest of the message.
fn message_limit(max_body_bytes: usize) -> usize {
    max_body_bytes.saturating_add(1024 * 1024)
}

/// The internal API of `rt`, accepting bodies up to `max_body_bytes`; calls for other services
/// go to `proxy` (gRPC proxying from other sidecars).
pub fn routes(
    rt: Arc<Runtime>,
    max_body_bytes: usize,
    proxy: Option<Arc<crate::proxy::GrpcProxy>>,
) -> tonic::service::Routes {
    let limit = message_limit(max_body_bytes);
    let server = ServiceInvocationServer::new(InternalService { rt, max_body_bytes })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    crate::proxy::with_fallback(tonic::service::Routes::new(server), proxy, None)
}

/// `ServiceInvocation` served for this sidecar's app.
pub struct InternalService {
    rt: Arc<Runtime>,
    max_body_bytes: usize,
}

/// The error daprd's internal server answers when the app could not be invoked.
fn app_failure(e: &layotto_core::Error) -> Status {
    match e.kind {
        ErrorKind::InvalidArgument => Status::invalid_argument(e.message.clone()),
        _ => Status::internal(format!("error invoking app channel: {}", e.message)),
    }
}

#[tonic::async_trait]
impl ServiceInvocation for InternalService {
    async fn call_actor(
        &self,
        _req: Request<internals::InternalInvokeRequest>,
    ) -> Result<Response<internals::InternalInvokeResponse>, Status> {
        Err(Status::unimplemented("layotto-rs has no actors"))
    }

    async fn call_actor_reminder(
        &self,
        _req: Request<internals::Reminder>,
    ) -> Result<Response<()>, Status> {
        Err(Status::unimplemented("layotto-rs has no actors"))
    }

    async fn call_local(
        &self,
        req: Request<internals::InternalInvokeRequest>,
    ) -> Result<Response<internals::InternalInvokeResponse>, Status> {
        let mut r = req.into_inner();
        let data = r
            .message
            .as_mut()
            .and_then(|m| m.data.take())
            .map(|a| Bytes::from(a.value))
            .unwrap_or_default();
        if data.len() > self.max_body_bytes {
            return Err(too_large(self.max_body_bytes));
        }
        let invoke = from_internal(r, Body::full(data))?;
        let resp = self
            .rt
            .invoke_local(&invoke)
            .await
            .map_err(|e| app_failure(&e))?;
        let (mut head, body) = to_internal_response(resp);
        // A unary answer holds the body whole.
        let data = body
            .collect()
            .await
            .map_err(|e| Status::internal(format!("reading the app's answer: {}", e.message)))?;
        if let Some(m) = head.message.as_mut() {
            m.data = Some(prost_types::Any {
                type_url: String::new(),
                value: data.to_vec(),
            });
        }
        Ok(Response::new(head))
    }

    type CallLocalStreamStream = BoxStream<internals::InternalInvokeResponseStream>;

    async fn call_local_stream(
        &self,
        req: Request<Streaming<internals::InternalInvokeRequestStream>>,
    ) -> Result<Response<Self::CallLocalStreamStream>, Status> {
        let mut stream = req.into_inner();
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty request stream"))?;
        let Some(head) = first.request.filter(|r| r.message.is_some()) else {
            return Err(Status::invalid_argument(
                "parsing InternalInvokeRequest error: request does not contain the required \
                 fields in the leading chunk",
            ));
        };
        let rest = stream.map(|m| {
            let m = m?;
            if m.request.is_some() {
                return Err(Status::invalid_argument(
                    "request found in a chunk after the leading one",
                ));
            }
            Ok(m.payload)
        });
        let body = Body::buffered(payloads(first.payload, rest, self.max_body_bytes))
            .await
            .map_err(|e| body_failure(&e))?;
        let invoke = from_internal(head, body)?;
        let resp = self
            .rt
            .invoke_local(&invoke)
            .await
            .map_err(|e| app_failure(&e))?;
        let (head, body) = to_internal_response(resp);
        let out = framed(head, body, |response, payload| {
            internals::InternalInvokeResponseStream { response, payload }
        })
        .map(|m| {
            m.map_err(|e| Status::internal(format!("reading the app's answer: {}", e.message)))
        });
        Ok(Response::new(Box::pin(out)))
    }
}

fn too_large(limit: usize) -> Status {
    Status::resource_exhausted(format!(
        "stream too large: the body exceeds the maximum of {limit} bytes (--max-body-size)"
    ))
}

/// How a body that could not be read is answered: over the size limit `RESOURCE_EXHAUSTED`,
/// out of sequence `INVALID_ARGUMENT`, the sender gone `CANCELLED`.
fn body_failure(e: &layotto_core::Error) -> Status {
    match e.kind {
        ErrorKind::InvalidArgument if e.message.contains("--max-body-size") => {
            Status::resource_exhausted(e.message.clone())
        }
        ErrorKind::InvalidArgument => Status::invalid_argument(e.message.clone()),
        _ => Status::cancelled(format!("reading the request body: {}", e.message)),
    }
}

/// The body carried by a stream of messages: `first` (the leading message's payload), then
/// each of `rest`'s, with `seq` checked from 0 and at most `limit` bytes in all.
fn payloads<S>(first: Option<common::StreamPayload>, rest: S, limit: usize) -> ByteStream
where
    S: futures::Stream<Item = Result<Option<common::StreamPayload>, Status>> + Send + 'static,
{
    let mut next = 0u64;
    let all = futures::stream::once(async move { Ok(first) }).chain(rest);
    let chunks = all.filter_map(move |m| {
        let out = match m {
            Err(s) => Some(Err(layotto_core::Error::unavailable(format!(
                "the body stream failed: {}",
                s.message()
            )))),
            Ok(None) => None,
            Ok(Some(p)) if p.seq != next => Some(Err(layotto_core::Error::invalid(format!(
                "invalid sequence number received: {} (expected: {next})",
                p.seq
            )))),
            Ok(Some(p)) => {
                next += 1;
                Some(Ok(Bytes::from(p.data)))
            }
        };
        std::future::ready(out)
    });
    layotto_runtime::limited(chunks.boxed(), limit)
}

/// `body` as numbered stream payloads of at most [`CHUNK_BYTES`] (none for an empty body).
fn chunked(
    body: Body,
) -> impl futures::Stream<Item = layotto_core::Result<common::StreamPayload>> + Send {
    body.into_stream()
        .flat_map(|chunk| {
            let parts: Vec<_> = match chunk {
                Err(e) => vec![Err(e)],
                Ok(b) => (0..b.len().div_ceil(CHUNK_BYTES))
                    .map(|i| Ok(b.slice(i * CHUNK_BYTES..((i + 1) * CHUNK_BYTES).min(b.len()))))
                    .collect(),
            };
            futures::stream::iter(parts)
        })
        .enumerate()
        .map(|(i, part)| {
            part.map(|data| common::StreamPayload {
                data: data.to_vec(),
                seq: i as u64,
            })
        })
}

/// The messages of a stream carrying `head` and `body`: `head` with the first payload (alone
/// for an empty body), then one message per payload, built by `make`; a body that fails ends
/// the stream with its error.
fn framed<H, M>(
    head: H,
    body: Body,
    make: fn(Option<H>, Option<common::StreamPayload>) -> M,
) -> impl futures::Stream<Item = layotto_core::Result<M>> + Send
where
    H: Send + 'static,
    M: Send + 'static,
{
    let parts = chunked(body).boxed();
    futures::stream::unfold(
        (Some(head), parts, false),
        move |(head, mut parts, done)| async move {
            if done {
                return None;
            }
            match parts.next().await {
                Some(Ok(p)) => Some((Ok(make(head, Some(p))), (None, parts, false))),
                Some(Err(e)) => Some((Err(e), (None, parts, true))),
                None => head.map(|h| (Ok(make(Some(h), None)), (None, parts, true))),
            }
        },
    )
}

/// Whether metadata key `k` (lower case) of another sidecar's request reaches the app, as
/// daprd's `InternalMetadataToHTTPHeader` decides: not its own routing key, not binary
/// values, not the content type (sent apart), not the connection's own headers.
fn reaches_app(k: &str) -> bool {
    k != "destination-app-id"
        && !k.ends_with("-bin")
        && layotto_dapr_wire::headers::forwarded(k)
        && !k.starts_with(':')
        && !k.starts_with("grpc-")
}

/// Another sidecar's request as an invocation of this app.
fn from_internal(r: internals::InternalInvokeRequest, data: Body) -> Result<InvokeRequest, Status> {
    if r.ver != internals::ApiVersion::V1 as i32 {
        return Err(Status::unimplemented(format!(
            "unsupported internal API version {}",
            r.ver
        )));
    }
    let m = r.message.unwrap_or_default();
    let ext = m
        .http_extension
        .ok_or_else(|| Status::invalid_argument("missing HTTP extension field"))?;
    let verb = common::http_extension::Verb::try_from(ext.verb)
        .unwrap_or(common::http_extension::Verb::None);
    if matches!(
        verb,
        common::http_extension::Verb::None | common::http_extension::Verb::Connect
    ) {
        return Err(Status::invalid_argument("invalid HTTP verb"));
    }
    let mut headers = Vec::new();
    let mut keys: Vec<_> = r.metadata.into_iter().collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in keys {
        let k = k.to_ascii_lowercase();
        if reaches_app(&k) {
            headers.extend(v.values.into_iter().map(|v| (k.clone(), v)));
        }
    }
    Ok(InvokeRequest {
        method: m.method,
        http_verb: verb.as_str_name().to_owned(),
        query: ext.querystring,
        content_type: m.content_type,
        data,
        headers,
    })
}

/// Headers as the wire's multi-valued map.
fn to_wire_map(headers: Vec<(String, String)>) -> HashMap<String, internals::ListStringValue> {
    let mut map: HashMap<String, internals::ListStringValue> = HashMap::new();
    for (k, v) in headers {
        map.entry(k).or_default().values.push(v);
    }
    map
}

/// The app's answer for the caller's sidecar: everything but the body, and the body. An HTTP
/// app's status goes as it is; a gRPC app's status as its code and message (an error without
/// a body), as daprd sends them.
fn to_internal_response(r: InvokeResponse) -> (internals::InternalInvokeResponse, Body) {
    let (code, message, data) = match r.grpc_status {
        Some(g) if g.code != 0 => (g.code, g.message, Body::default()),
        Some(_) => (0, String::new(), r.data),
        None => (
            i32::from(if r.status == 0 { 200 } else { r.status }),
            String::new(),
            r.data,
        ),
    };
    let head = internals::InternalInvokeResponse {
        status: Some(internals::Status {
            code,
            message,
            details: Vec::new(),
        }),
        headers: to_wire_map(r.headers),
        trailers: HashMap::new(),
        message: Some(common::InvokeResponse {
            data: None,
            content_type: r.content_type,
        }),
    };
    (head, data)
}

/// An invocation as the request another sidecar reads, with `data` inline when given
/// (`CallLocal`; `CallLocalStream` sends the body in chunks).
fn to_internal(req: &InvokeRequest, data: Option<&[u8]>) -> internals::InternalInvokeRequest {
    internals::InternalInvokeRequest {
        ver: internals::ApiVersion::V1 as i32,
        metadata: to_wire_map(req.headers.clone()),
        message: Some(crate::dapr::invoke_message(req, data)),
        actor: None,
    }
}

/// The callee sidecar's answer as the app's answer: an HTTP app's status as is (codes of 100
/// and up), a gRPC app's code kept and also given as its HTTP status (daprd's
/// `HTTPStatusFromCode`), its message as the body of an error.
fn from_internal_response(head: internals::InternalInvokeResponse, data: Body) -> InvokeResponse {
    let status = head.status.unwrap_or_default();
    let (code, data, grpc_status) = if status.code >= 100 {
        (u16::try_from(status.code).unwrap_or(500), data, None)
    } else {
        let http = crate::dapr::http_status(Code::from(status.code));
        let data = if status.code == 0 {
            data
        } else {
            Body::full(status.message.clone().into_bytes())
        };
        let grpc = GrpcStatus {
            code: status.code,
            message: status.message,
        };
        (http, data, Some(grpc))
    };
    let mut headers: Vec<(String, String)> = head
        .headers
        .into_iter()
        .flat_map(|(k, v)| {
            let k = k.to_ascii_lowercase();
            v.values.into_iter().map(move |v| (k.clone(), v))
        })
        .collect();
    headers.sort();
    InvokeResponse {
        status: code,
        content_type: head.message.map(|m| m.content_type).unwrap_or_default(),
        data,
        headers,
        grpc_status,
    }
}

/// Lazily connected HTTP/2 channels to other sidecars' internal gRPC ports, one per
/// `host:port`, kept until a call through one fails to connect.
#[derive(Default)]
pub(crate) struct Channels {
    map: Mutex<HashMap<String, Channel>>,
}

impl Channels {
    /// The channel to `address`.
    pub(crate) fn get(&self, address: &str) -> Result<Channel, String> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(address) {
            return Ok(c.clone());
        }
        let channel = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| format!("bad address '{address}': {e}"))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            .connect_lazy();
        map.insert(address.to_owned(), channel.clone());
        Ok(channel)
    }

    /// Drops the channel to `address` (the next call dials again).
    pub(crate) fn forget(&self, address: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(address);
    }
}

/// The runtime's [`RemoteChannel`] over other sidecars' internal gRPC ports.
pub struct InternalClient {
    channels: Channels,
    max_body_bytes: usize,
}

impl InternalClient {
    /// A client sending and accepting bodies up to `max_body_bytes`.
    pub fn new(max_body_bytes: usize) -> Self {
        Self {
            channels: Channels::default(),
            max_body_bytes,
        }
    }

    fn client(&self, address: &str) -> Result<ServiceInvocationClient<Channel>, ChannelError> {
        let limit = message_limit(self.max_body_bytes);
        let channel = self
            .channels
            .get(address)
            .map_err(ChannelError::Unavailable)?;
        Ok(ServiceInvocationClient::new(channel)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit))
    }

    /// `CallLocalStream`: the body goes out in chunks as it is read, the answer's body comes
    /// back as it arrives. A body that fails while being sent cancels the call (the callee
    /// sees a reset stream, never a short body).
    async fn stream(
        &self,
        client: ServiceInvocationClient<Channel>,
        req: &InvokeRequest,
    ) -> Result<InvokeResponse, Status> {
        let head = to_internal(req, None);
        let make = |request, payload| internals::InternalInvokeRequestStream { request, payload };
        if let Some(data) = req.data.as_bytes() {
            // A whole body: its messages at once, without a task.
            let messages: Vec<_> = framed(head, Body::full(data.clone()), make)
                .filter_map(|m| std::future::ready(m.ok()))
                .collect()
                .await;
            return self.send(client, futures::stream::iter(messages)).await;
        }
        // A streamed body is pumped by a task into the call; when it fails the task keeps the
        // call's stream open (a clean end would hand the callee a short body) and reports.
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<layotto_core::Error>();
        let mut messages = framed(head, req.data.clone(), make).boxed();
        tokio::spawn(async move {
            while let Some(m) = messages.next().await {
                match m {
                    Ok(m) => {
                        if tx.send(m).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = failed_tx.send(e);
                        tx.closed().await;
                        return;
                    }
                }
            }
        });
        let outgoing = tokio_stream::wrappers::ReceiverStream::new(rx);
        tokio::select! {
            r = self.send(client, outgoing) => r,
            Ok(e) = failed_rx => Err(Status::cancelled(format!(
                "reading the request body: {}",
                e.message
            ))),
        }
    }

    /// One `CallLocalStream` call sending `outgoing`; the answer's body is read as it arrives.
    async fn send<S>(
        &self,
        mut client: ServiceInvocationClient<Channel>,
        outgoing: S,
    ) -> Result<InvokeResponse, Status>
    where
        S: futures::Stream<Item = internals::InternalInvokeRequestStream> + Send + 'static,
    {
        let mut call = Request::new(outgoing);
        crate::metrics::inject_trace(&mut call);
        let mut answer = client.call_local_stream(call).await?.into_inner();
        let first = answer
            .message()
            .await?
            .ok_or_else(|| Status::internal("the callee sidecar sent an empty answer"))?;
        let head = first
            .response
            .filter(|r| r.status.is_some())
            .ok_or_else(|| {
                Status::internal(
                    "response does not contain the required fields in the leading chunk",
                )
            })?;
        let rest = answer.map(|m| m.map(|m| m.payload));
        let body = Body::buffered(payloads(first.payload, rest, self.max_body_bytes))
            .await
            .map_err(|e| body_failure(&e))?;
        Ok(from_internal_response(head, body))
    }

    async fn unary(
        &self,
        mut client: ServiceInvocationClient<Channel>,
        req: &InvokeRequest,
        data: &[u8],
    ) -> Result<InvokeResponse, Status> {
        let mut call = Request::new(to_internal(req, Some(data)));
        crate::metrics::inject_trace(&mut call);
        let mut head = client.call_local(call).await?.into_inner();
        let data = head
            .message
            .as_mut()
            .and_then(|m| m.data.take())
            .map(|a| Bytes::from(a.value))
            .unwrap_or_default();
        Ok(from_internal_response(head, Body::full(data)))
    }
}

#[async_trait]
impl RemoteChannel for InternalClient {
    async fn invoke(
        &self,
        address: &str,
        _callee: &str,
        req: &InvokeRequest,
    ) -> Result<InvokeResponse, ChannelError> {
        let client = self.client(address)?;
        let answer = match self.stream(client.clone(), req).await {
            // A sidecar that does not stream gets the body whole, when it is still at hand
            // (daprd falls back only with a replayable body too).
            Err(s) if s.code() == Code::Unimplemented => match req.data.as_bytes() {
                Some(data) => self.unary(client, req, data).await,
                None => Err(Status::unimplemented(
                    "the callee's sidecar does not serve CallLocalStream, and the streamed \
                     body was consumed by the attempt",
                )),
            },
            other => other,
        };
        answer.map_err(|s| {
            if matches!(s.code(), Code::Unavailable | Code::Unauthenticated) {
                self.channels.forget(address);
            }
            match s.code() {
                Code::Unimplemented => ChannelError::Unimplemented,
                // Not reached, or reached but not yet processing (daprd retries these).
                Code::Unavailable | Code::Unauthenticated => {
                    ChannelError::Unavailable(s.message().to_owned())
                }
                _ => ChannelError::Failed(s.message().to_owned()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_cross_the_wire_and_back() {
        let req = InvokeRequest {
            method: "orders/1".into(),
            http_verb: "PUT".into(),
            query: "a=1&b=2".into(),
            content_type: "application/json".into(),
            data: Body::from("{}"),
            headers: vec![
                ("x-one".into(), "1".into()),
                ("x-one".into(), "2".into()),
                ("destination-app-id".into(), "b".into()),
                ("trace-bin".into(), "AAA".into()),
            ],
        };
        let back = from_internal(to_internal(&req, None), req.data.clone()).unwrap();
        assert_eq!(back.method, "orders/1");
        assert_eq!(back.http_verb, "PUT");
        assert_eq!(back.query, "a=1&b=2");
        assert_eq!(back.content_type, "application/json");
        assert_eq!(
            back.headers,
            vec![("x-one".into(), "1".into()), ("x-one".into(), "2".into())]
        );
    }

    #[test]
    fn a_request_without_extension_or_with_a_bad_verb_is_refused() {
        let mut r = to_internal(
            &InvokeRequest {
                method: "m".into(),
                http_verb: "GET".into(),
                ..InvokeRequest::default()
            },
            None,
        );
        r.message.as_mut().unwrap().http_extension = None;
        let e = from_internal(r.clone(), Body::default()).unwrap_err();
        assert_eq!(e.message(), "missing HTTP extension field");
        r.message.as_mut().unwrap().http_extension = Some(common::HttpExtension {
            verb: common::http_extension::Verb::Connect.into(),
            querystring: String::new(),
        });
        assert_eq!(
            from_internal(r, Body::default()).unwrap_err().message(),
            "invalid HTTP verb"
        );
    }

    /// The payloads of `body` as the callee reads them back, with `seq` checked.
    async fn round_trip(
        parts: Vec<common::StreamPayload>,
        limit: usize,
    ) -> layotto_core::Result<Bytes> {
        let rest = futures::stream::iter(parts.into_iter().map(|p| Ok(Some(p))));
        Body::stream(payloads(None, rest, limit)).collect().await
    }

    #[tokio::test]
    async fn chunks_are_numbered_and_checked() {
        let data = Bytes::from(vec![7u8; CHUNK_BYTES * 2 + 5]);
        let parts: Vec<_> = chunked(Body::full(data.clone()))
            .map(|p| p.unwrap())
            .collect()
            .await;
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2].seq, 2);
        assert_eq!(round_trip(parts.clone(), data.len()).await.unwrap(), data);
        let e = round_trip(parts[1..].to_vec(), data.len())
            .await
            .unwrap_err();
        assert!(e.message.contains("expected: 0"), "{}", e.message);
        let e = round_trip(parts.clone(), 10).await.unwrap_err();
        assert_eq!(body_failure(&e).code(), Code::ResourceExhausted);
        assert_eq!(chunked(Body::default()).count().await, 0);
        // A streamed body of uneven chunks is cut to at most CHUNK_BYTES per payload.
        let uneven = futures::stream::iter([
            Ok(Bytes::from(vec![1u8; CHUNK_BYTES + 1])),
            Ok(Bytes::from(vec![2u8; 3])),
        ])
        .boxed();
        let sizes: Vec<_> = chunked(Body::stream(uneven))
            .map(|p| p.unwrap().data.len())
            .collect()
            .await;
        assert_eq!(sizes, vec![CHUNK_BYTES, 1, 3]);
    }

    #[tokio::test]
    async fn a_failing_body_ends_the_frames_with_its_error() {
        let failing = futures::stream::iter([
            Ok(Bytes::from_static(b"a")),
            Err(layotto_core::Error::unavailable("caller gone")),
        ])
        .boxed();
        let frames: Vec<_> = framed((), Body::stream(failing), |h, p| (h, p))
            .collect()
            .await;
        assert_eq!(frames.len(), 2);
        assert!(
            frames[0].as_ref().unwrap().0.is_some(),
            "the head goes first"
        );
        assert!(frames[1].is_err());
        let empty: Vec<_> = framed((), Body::default(), |h, p| (h, p)).collect().await;
        assert_eq!(empty.len(), 1, "an empty body still sends the head");
    }

    #[test]
    fn grpc_app_codes_become_http_statuses() {
        let head = |code| internals::InternalInvokeResponse {
            status: Some(internals::Status {
                code,
                message: "nope".into(),
                details: Vec::new(),
            }),
            ..Default::default()
        };
        assert_eq!(from_internal_response(head(0), Body::default()).status, 200);
        assert_eq!(from_internal_response(head(5), Body::default()).status, 404);
        assert_eq!(
            from_internal_response(head(418), Body::default()).status,
            418
        );
        let r = from_internal_response(head(3), Body::default());
        assert_eq!((r.status, r.data), (400, Body::from("nope")));
    }
}
