//! Invocation bodies: whole, or a stream of chunks read once.
//!
//! Service invocation carries bodies of up to `--max-body-size` (daprd's default 4 MiB; users
//! raise it to hundreds). A body that arrives faster than [`BUFFERED_BYTES`] is passed whole (so
//! the app gets a `Content-Length` and the gRPC edges need no reassembly); a larger one is
//! passed on chunk by chunk as it arrives, so a sidecar holds at most about [`BUFFERED_BYTES`]
//! of it per direction, as daprd streams bodies (`dapr/dapr:pkg/messaging/v1`,
//! `CallLocalStream`).
//!
//! A streamed body can be read once. Where a request may have to be sent again (a Resiliency
//! retry, or a callee that does not stream) it is first made [`Body::replayable`], which reads it
//! whole, as daprd's replay buffer does.

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use layotto_core::file::ByteStream;
use layotto_core::{Error, ErrorKind, Result};

/// Bytes a body may reach while it is still read whole (1 MiB); past this it is streamed.
pub const BUFFERED_BYTES: usize = 1 << 20;

/// A request or response body.
///
/// Clones of a streamed body share the one stream: whichever clone reads it first gets it, the
/// others an error.
#[derive(Clone, Default)]
pub struct Body(Inner);

#[derive(Clone)]
enum Inner {
    Full(Bytes),
    Stream(Arc<Mutex<Option<ByteStream>>>),
}

impl Default for Inner {
    fn default() -> Self {
        Self::Full(Bytes::new())
    }
}

impl Body {
    /// A whole body.
    pub fn full(data: impl Into<Bytes>) -> Self {
        Self(Inner::Full(data.into()))
    }

    /// A body read from `stream` as it arrives (an `Err` item aborts the call that carries it).
    pub fn stream(stream: ByteStream) -> Self {
        Self(Inner::Stream(Arc::new(Mutex::new(Some(stream)))))
    }

    /// Reads `stream` until it ends (a whole body) or [`BUFFERED_BYTES`] have arrived (a body
    /// streamed from what was read on).
    ///
    /// # Errors
    /// The stream's own error, when it fails before either.
    pub async fn buffered(mut stream: ByteStream) -> Result<Self> {
        let mut buf = BytesMut::new();
        let mut first: Option<Bytes> = None;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            // One chunk is kept as it is, not copied.
            match first.take() {
                None if buf.is_empty() => first = Some(chunk),
                prev => {
                    if let Some(p) = prev {
                        buf.extend_from_slice(&p);
                    }
                    buf.extend_from_slice(&chunk);
                }
            }
            let held = first.as_ref().map_or(buf.len(), Bytes::len);
            if held >= BUFFERED_BYTES {
                let head = first.unwrap_or_else(|| buf.freeze());
                let rest = futures::stream::once(async move { Ok(head) }).chain(stream);
                return Ok(Self::stream(rest.boxed()));
            }
        }
        Ok(Self::full(first.unwrap_or_else(|| buf.freeze())))
    }

    /// The whole body, unless it is streamed.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match &self.0 {
            Inner::Full(b) => Some(b),
            Inner::Stream(_) => None,
        }
    }

    /// Whether the body is streamed (not held whole).
    pub fn is_stream(&self) -> bool {
        matches!(self.0, Inner::Stream(_))
    }

    /// Whether the body is known to be empty (a stream is not).
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_some_and(Bytes::is_empty)
    }

    /// The length when the body is whole.
    pub fn len(&self) -> Option<usize> {
        self.as_bytes().map(Bytes::len)
    }

    /// The body as chunks: a whole body in one (none when empty), a streamed one as it arrives.
    /// A streamed body already read yields one `Internal` error.
    pub fn into_stream(self) -> ByteStream {
        match self.0 {
            Inner::Full(b) if b.is_empty() => futures::stream::empty().boxed(),
            Inner::Full(b) => futures::stream::once(async move { Ok(b) }).boxed(),
            Inner::Stream(s) => crate::lock(&s)
                .take()
                .unwrap_or_else(|| futures::stream::once(async { Err(already_read()) }).boxed()),
        }
    }

    /// The whole body, reading a streamed one to its end.
    ///
    /// # Errors
    /// The stream's error; `Internal` when a streamed body was already read.
    pub async fn collect(self) -> Result<Bytes> {
        if let Inner::Full(b) = self.0 {
            return Ok(b);
        }
        let mut stream = self.into_stream();
        let mut buf = BytesMut::new();
        while let Some(chunk) = stream.next().await {
            buf.extend_from_slice(&chunk?);
        }
        Ok(buf.freeze())
    }

    /// The body in a form that can be sent more than once: a streamed body read whole.
    ///
    /// # Errors
    /// As [`Body::collect`].
    pub async fn replayable(self) -> Result<Self> {
        if self.is_stream() {
            return Ok(Self::full(self.collect().await?));
        }
        Ok(self)
    }
}

fn already_read() -> Error {
    Error::new(
        ErrorKind::Internal,
        "the streamed body was already read: it cannot be sent again",
    )
}

/// `stream` failing with `InvalidArgument` once more than `limit` bytes passed (the
/// `--max-body-size` check of a body whose length is not known in advance).
pub fn limited(stream: ByteStream, limit: usize) -> ByteStream {
    let mut seen = 0usize;
    stream
        .map(move |chunk| {
            let chunk = chunk?;
            seen = seen.saturating_add(chunk.len());
            if seen > limit {
                return Err(Error::invalid(format!(
                    "the body exceeds the maximum of {limit} bytes (--max-body-size)"
                )));
            }
            Ok(chunk)
        })
        .boxed()
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Inner::Full(b) => f.debug_tuple("Body").field(b).finish(),
            Inner::Stream(_) => f.write_str("Body(<stream>)"),
        }
    }
}

/// Whole bodies compare by content; a streamed body equals only its own clones.
impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Inner::Full(a), Inner::Full(b)) => a == b,
            (Inner::Stream(a), Inner::Stream(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Body {}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Self::full(b)
    }
}

impl From<Vec<u8>> for Body {
    fn from(b: Vec<u8>) -> Self {
        Self::full(b)
    }
}

impl From<&'static [u8]> for Body {
    fn from(b: &'static [u8]) -> Self {
        Self::full(Bytes::from_static(b))
    }
}

impl From<&'static str> for Body {
    fn from(b: &'static str) -> Self {
        Self::full(Bytes::from_static(b.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(n: usize, size: usize) -> ByteStream {
        futures::stream::iter((0..n).map(move |i| Ok(Bytes::from(vec![i as u8; size])))).boxed()
    }

    #[tokio::test]
    async fn small_bodies_are_whole_and_large_ones_stream() {
        let small = Body::buffered(chunks(3, 10)).await.unwrap();
        assert_eq!(small.len(), Some(30));
        let large = Body::buffered(chunks(40, 64 * 1024)).await.unwrap();
        assert!(large.is_stream());
        let all = large.clone().collect().await.unwrap();
        assert_eq!(all.len(), 40 * 64 * 1024);
        assert_eq!(all[all.len() - 1], 39);
        // The clone shares the stream, which is gone.
        let e = large.collect().await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Internal);
        assert!(Body::buffered(chunks(0, 1)).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn replayable_reads_a_stream_whole_and_limits_apply() {
        let b = Body::stream(chunks(2, 5)).replayable().await.unwrap();
        assert_eq!(b.as_bytes().map(Bytes::len), Some(10));
        let over = Body::stream(limited(chunks(3, 5), 12)).collect().await;
        assert_eq!(over.unwrap_err().kind, ErrorKind::InvalidArgument);
        let failing =
            futures::stream::iter([Ok(Bytes::from_static(b"a")), Err(Error::unavailable("cut"))])
                .boxed();
        assert!(Body::buffered(failing).await.is_err());
    }
}
