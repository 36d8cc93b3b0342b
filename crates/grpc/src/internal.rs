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
use bytes::{Bytes, BytesMut};
use layotto_core::ErrorKind;
use layotto_proto::dapr::proto::common::v1 as common;
use layotto_proto::dapr::proto::internals::v1 as internals;
use layotto_runtime::{ChannelError, InvokeRequest, InvokeResponse, RemoteChannel, Runtime};
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
        let invoke = from_internal(r, data)?;
        let resp = self
            .rt
            .invoke_local(&invoke)
            .await
            .map_err(|e| app_failure(&e))?;
        let (mut head, data) = to_internal_response(resp);
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
        let mut body = Chunks::new(self.max_body_bytes);
        if let Some(p) = first.payload {
            body.push(p)?;
        }
        while let Some(m) = stream.message().await? {
            if m.request.is_some() {
                return Err(Status::invalid_argument(
                    "request found in a chunk after the leading one",
                ));
            }
            if let Some(p) = m.payload {
                body.push(p)?;
            }
        }
        let invoke = from_internal(head, body.finish())?;
        let resp = self
            .rt
            .invoke_local(&invoke)
            .await
            .map_err(|e| app_failure(&e))?;
        let (head, data) = to_internal_response(resp);
        let out = response_stream(head, data).map(Ok);
        Ok(Response::new(Box::pin(futures::stream::iter(out))))
    }
}

/// The body of a stream, assembled chunk by chunk with `seq` checked.
struct Chunks {
    buf: BytesMut,
    next: u64,
    limit: usize,
}

impl Chunks {
    fn new(limit: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            next: 0,
            limit,
        }
    }

    fn push(&mut self, p: common::StreamPayload) -> Result<(), Status> {
        if p.seq != self.next {
            return Err(Status::invalid_argument(format!(
                "invalid sequence number received: {} (expected: {})",
                p.seq, self.next
            )));
        }
        self.next += 1;
        if self.buf.len() + p.data.len() > self.limit {
            return Err(too_large(self.limit));
        }
        self.buf.extend_from_slice(&p.data);
        Ok(())
    }

    fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

fn too_large(limit: usize) -> Status {
    Status::resource_exhausted(format!(
        "stream too large: the body exceeds the maximum of {limit} bytes (--max-body-size)"
    ))
}

/// `head` first (with the first chunk), then the rest of `data` in [`CHUNK_BYTES`] chunks.
fn response_stream(
    head: internals::InternalInvokeResponse,
    data: Bytes,
) -> impl Iterator<Item = internals::InternalInvokeResponseStream> + Send {
    let mut chunks = chunked(data);
    let first = internals::InternalInvokeResponseStream {
        response: Some(head),
        payload: chunks.next(),
    };
    std::iter::once(first).chain(chunks.map(|p| internals::InternalInvokeResponseStream {
        response: None,
        payload: Some(p),
    }))
}

/// `data` as numbered stream payloads (none for an empty body).
fn chunked(data: Bytes) -> impl Iterator<Item = common::StreamPayload> + Send {
    let n = data.len().div_ceil(CHUNK_BYTES);
    (0..n).map(move |i| common::StreamPayload {
        data: data
            .slice(i * CHUNK_BYTES..((i + 1) * CHUNK_BYTES).min(data.len()))
            .to_vec(),
        seq: i as u64,
    })
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
fn from_internal(
    r: internals::InternalInvokeRequest,
    data: Bytes,
) -> Result<InvokeRequest, Status> {
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

/// The app's answer for the caller's sidecar: everything but the body, and the body.
fn to_internal_response(r: InvokeResponse) -> (internals::InternalInvokeResponse, Bytes) {
    let status = if r.status == 0 { 200 } else { r.status };
    let head = internals::InternalInvokeResponse {
        status: Some(internals::Status {
            code: i32::from(status),
            message: String::new(),
            details: Vec::new(),
        }),
        headers: to_wire_map(r.headers),
        trailers: HashMap::new(),
        message: Some(common::InvokeResponse {
            data: None,
            content_type: r.content_type,
        }),
    };
    (head, r.data)
}

/// An invocation as the request another sidecar reads, with the body inline when `with_data`
/// (`CallLocal`; `CallLocalStream` sends it in chunks).
fn to_internal(req: &InvokeRequest, with_data: bool) -> internals::InternalInvokeRequest {
    internals::InternalInvokeRequest {
        ver: internals::ApiVersion::V1 as i32,
        metadata: to_wire_map(req.headers.clone()),
        message: Some(crate::dapr::invoke_message(req, with_data)),
        actor: None,
    }
}

/// The callee sidecar's answer as the app's answer: an HTTP app's status as is, a gRPC app's
/// code as its HTTP status (daprd's `HTTPStatusFromCode`).
fn from_internal_response(head: internals::InternalInvokeResponse, data: Bytes) -> InvokeResponse {
    let status = head.status.unwrap_or_default();
    let (code, data) = if status.code >= 100 {
        (u16::try_from(status.code).unwrap_or(500), data)
    } else if status.code == 0 {
        (200, data)
    } else {
        let code = crate::dapr::http_status(Code::from(status.code));
        (code, Bytes::from(status.message.into_bytes()))
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

    async fn stream(
        &self,
        mut client: ServiceInvocationClient<Channel>,
        req: &InvokeRequest,
    ) -> Result<InvokeResponse, Status> {
        let mut chunks = chunked(req.data.clone());
        let first = internals::InternalInvokeRequestStream {
            request: Some(to_internal(req, false)),
            payload: chunks.next(),
        };
        let rest = chunks.map(|p| internals::InternalInvokeRequestStream {
            request: None,
            payload: Some(p),
        });
        let outgoing = futures::stream::iter(std::iter::once(first).chain(rest));
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
        let mut body = Chunks::new(self.max_body_bytes);
        if let Some(p) = first.payload {
            body.push(p)?;
        }
        while let Some(m) = answer.message().await? {
            if let Some(p) = m.payload {
                body.push(p)?;
            }
        }
        Ok(from_internal_response(head, body.finish()))
    }

    async fn unary(
        &self,
        mut client: ServiceInvocationClient<Channel>,
        req: &InvokeRequest,
    ) -> Result<InvokeResponse, Status> {
        let mut call = Request::new(to_internal(req, true));
        crate::metrics::inject_trace(&mut call);
        let mut head = client.call_local(call).await?.into_inner();
        let data = head
            .message
            .as_mut()
            .and_then(|m| m.data.take())
            .map(|a| Bytes::from(a.value))
            .unwrap_or_default();
        Ok(from_internal_response(head, data))
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
            Err(s) if s.code() == Code::Unimplemented => self.unary(client, req).await,
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
            data: Bytes::from_static(b"{}"),
            headers: vec![
                ("x-one".into(), "1".into()),
                ("x-one".into(), "2".into()),
                ("destination-app-id".into(), "b".into()),
                ("trace-bin".into(), "AAA".into()),
            ],
        };
        let back = from_internal(to_internal(&req, false), req.data.clone()).unwrap();
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
            false,
        );
        r.message.as_mut().unwrap().http_extension = None;
        let e = from_internal(r.clone(), Bytes::new()).unwrap_err();
        assert_eq!(e.message(), "missing HTTP extension field");
        r.message.as_mut().unwrap().http_extension = Some(common::HttpExtension {
            verb: common::http_extension::Verb::Connect.into(),
            querystring: String::new(),
        });
        assert_eq!(
            from_internal(r, Bytes::new()).unwrap_err().message(),
            "invalid HTTP verb"
        );
    }

    #[test]
    fn chunks_are_numbered_and_checked() {
        let data = Bytes::from(vec![7u8; CHUNK_BYTES * 2 + 5]);
        let parts: Vec<_> = chunked(data.clone()).collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2].seq, 2);
        let mut c = Chunks::new(data.len());
        for p in parts.clone() {
            c.push(p).unwrap();
        }
        assert_eq!(c.finish(), data);
        let mut c = Chunks::new(data.len());
        let e = c.push(parts[1].clone()).unwrap_err();
        assert!(e.message().contains("expected: 0"), "{}", e.message());
        let mut c = Chunks::new(10);
        assert_eq!(
            c.push(parts[0].clone()).unwrap_err().code(),
            Code::ResourceExhausted
        );
        assert_eq!(chunked(Bytes::new()).count(), 0);
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
        assert_eq!(from_internal_response(head(0), Bytes::new()).status, 200);
        assert_eq!(from_internal_response(head(5), Bytes::new()).status, 404);
        assert_eq!(from_internal_response(head(418), Bytes::new()).status, 418);
        let r = from_internal_response(head(3), Bytes::new());
        assert_eq!((r.status, &r.data[..]), (400, &b"nope"[..]));
    }
}
