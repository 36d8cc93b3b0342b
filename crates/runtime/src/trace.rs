//! Distributed tracing: OpenTelemetry spans through the global tracer, and the W3C
//! `traceparent` / `tracestate` and gRPC `grpc-trace-bin` forms of a span context
//! (<https://www.w3.org/TR/trace-context/>; OpenCensus' binary format, which Dapr's gRPC clients
//! send).
//!
//! The binary installs a tracer provider and calls [`enable`] when the configuration asks for
//! tracing; until then nothing here allocates a span. Spans: one per API call at the edges
//! (kind server, named by the gRPC method or `METHOD /path`), one per component call at the call
//! path (kind client, `<api>/<operation>`, attribute `component`), one per publish (producer)
//! and per delivery to the app (consumer, child of the publisher's context carried in the
//! CloudEvent's `traceparent`). App channels put the current context on what they send
//! ([`current_traceparent`]).

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
};
use opentelemetry::{Context, KeyValue, global};

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Whether new traces (no sampled parent) are sampled at all (`samplingRate` > 0).
static SAMPLES_NEW: AtomicBool = AtomicBool::new(true);

/// The name of the global tracer the sidecar's spans come from.
pub const TRACER: &str = "layotto-rs";

/// Turns span creation on (the binary does, once a tracer provider is installed);
/// `sampling_rate` is the provider's rate for new traces: at 0, no span is built unless a
/// sampled parent asks for one (the sampler would drop it anyway).
pub fn enable(sampling_rate: f64) {
    SAMPLES_NEW.store(sampling_rate > 0.0, Ordering::SeqCst);
    ENABLED.store(true, Ordering::SeqCst);
}

/// Whether spans are created.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// A new span `name` of `kind`, child of `parent`, with `attributes`; the context holding it.
/// `None` while tracing is off. When the span could not be sampled (an unsampled parent, or
/// none and a sampling rate of 0) no span is built: the answer is `parent` itself when it
/// carries a context (so it still propagates), else `None`.
pub fn start(
    name: impl Into<std::borrow::Cow<'static, str>>,
    kind: SpanKind,
    parent: &Context,
    attributes: Vec<KeyValue>,
) -> Option<Context> {
    if !enabled() {
        return None;
    }
    let sc = parent.span().span_context().clone();
    if sc.is_valid() && !sc.is_sampled() {
        return Some(parent.clone());
    }
    if !sc.is_valid() && !SAMPLES_NEW.load(Ordering::Relaxed) {
        return None;
    }
    let tracer = global::tracer(TRACER);
    let span = tracer
        .span_builder(name)
        .with_kind(kind)
        .with_attributes(attributes)
        .start_with_context(&tracer, parent);
    Some(parent.with_span(span))
}

/// Ends the span of `cx` with an error status when `error` is given.
pub fn finish(cx: &Context, error: Option<&str>) {
    let span = cx.span();
    if let Some(e) = error {
        span.set_status(opentelemetry::trace::Status::error(e.to_owned()));
    }
    span.end();
}

/// The remote parent a request names: W3C `traceparent` (with `tracestate`), else gRPC
/// `grpc-trace-bin` (base64, as HTTP/2 metadata carries it); the current context otherwise.
pub fn remote_parent(
    traceparent: Option<&str>,
    tracestate: Option<&str>,
    grpc_trace_bin: Option<&[u8]>,
) -> Context {
    let sc = traceparent
        .and_then(|t| parse_traceparent(t, tracestate))
        .or_else(|| grpc_trace_bin.and_then(parse_grpc_trace_bin));
    match sc {
        Some(sc) => Context::current().with_remote_span_context(sc),
        None => Context::current(),
    }
}

/// Parses a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`); `None` when malformed or
/// all-zero.
pub fn parse_traceparent(value: &str, tracestate: Option<&str>) -> Option<SpanContext> {
    let mut parts = value.trim().split('-');
    let version = parts.next()?;
    let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
    let lower_hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if version.len() != 2
        || version == "ff"
        || trace.len() != 32
        || span.len() != 16
        || flags.len() != 2
        || ![version, trace, span, flags].iter().all(|p| lower_hex(p))
    {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let state = tracestate
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    let sc = SpanContext::new(trace_id, span_id, TraceFlags::new(flags), true, state);
    sc.is_valid().then_some(sc)
}

/// Parses OpenCensus' binary span context (`grpc-trace-bin`, already base64-decoded): version 0,
/// field 0 the trace id (16 bytes), field 1 the span id (8), field 2 the options (1).
pub fn parse_grpc_trace_bin(b: &[u8]) -> Option<SpanContext> {
    if b.first() != Some(&0) {
        return None;
    }
    let (mut trace, mut span, mut flags) = (None, None, 0u8);
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            0 => {
                trace = Some(<[u8; 16]>::try_from(b.get(i + 1..i + 17)?).ok()?);
                i += 17;
            }
            1 => {
                span = Some(<[u8; 8]>::try_from(b.get(i + 1..i + 9)?).ok()?);
                i += 9;
            }
            2 => {
                flags = *b.get(i + 1)?;
                i += 2;
            }
            _ => break,
        }
    }
    let sc = SpanContext::new(
        TraceId::from_bytes(trace?),
        SpanId::from_bytes(span?),
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    );
    sc.is_valid().then_some(sc)
}

/// The `traceparent` of `sc`.
pub fn traceparent(sc: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    )
}

/// The `traceparent` and `tracestate` (empty when none) of the current span, if it is valid:
/// what app channels and CloudEvents carry on.
pub fn current_traceparent() -> Option<(String, String)> {
    let cx = Context::current();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid()
        .then(|| (traceparent(sc), sc.trace_state().header()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsampled_traces_build_no_span_but_propagate() {
        enable(0.0);
        assert!(start("x", SpanKind::Server, &Context::new(), vec![]).is_none());
        let sc = parse_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            None,
        )
        .expect("valid, not sampled");
        let parent = Context::new().with_remote_span_context(sc.clone());
        let got = start("x", SpanKind::Server, &parent, vec![]).expect("the parent propagates");
        assert_eq!(got.span().span_context().span_id(), sc.span_id());
    }

    #[test]
    fn w3c_and_grpc_trace_bin() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let sc = parse_traceparent(tp, Some("congo=t61rcWkgMzE")).expect("valid");
        assert_eq!(traceparent(&sc), tp);
        assert_eq!(sc.trace_state().header(), "congo=t61rcWkgMzE");
        assert!(
            parse_traceparent(
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                None
            )
            .is_none()
        );
        assert!(parse_traceparent("zz", None).is_none());
        let mut bin = vec![0u8, 0];
        bin.extend_from_slice(&sc.trace_id().to_bytes());
        bin.push(1);
        bin.extend_from_slice(&sc.span_id().to_bytes());
        bin.extend_from_slice(&[2, 1]);
        let got = parse_grpc_trace_bin(&bin).expect("valid");
        assert_eq!(traceparent(&got), tp);
        assert!(parse_grpc_trace_bin(&bin[..10]).is_none());
    }
}
