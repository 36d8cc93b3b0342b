//! The span exporters: the OpenTelemetry SDK's tracer provider, installed as the global one, for
//! Dapr's Configuration `spec.tracing` (OTLP over gRPC or HTTP, with TLS unless `isSecure` is
//! false, trusting the system's roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` name others); Zipkin;
//! `stdout`; `samplingRate`) or a Layotto config's `tracing` section (Zipkin, jaeger as OTLP,
//! SOFATracer's `stdout` exporter).
//!
//! The stdout exporter logs one info line per span, scope `layotto.trace.stdout`, with the
//! fields of Layotto's (`diagnostics/exporter_iml/stdout.go`): method (the span name), trace,
//! span and parent span ids, start and end, `processTime` in milliseconds, and the result.
//!
//! Sampling is daprd's: a sampled parent is followed, new traces are sampled at `samplingRate`
//! (0: none). The service name is the app id unless the Layotto section names one.

use layotto_config::TracingSpec;
use opentelemetry_otlp::{WithExportConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

/// Builds and installs the tracer provider for `spec` (must run inside the tokio runtime: the
/// gRPC exporter's channel lives there), and turns span creation on; the provider, to flush
/// at shutdown.
///
/// # Errors
/// An exporter that cannot be built (bad endpoint), or a TLS collector (not supported yet).
pub fn install(spec: &TracingSpec, app_id: &str) -> Result<SdkTracerProvider, String> {
    let name = spec
        .service_name
        .clone()
        .unwrap_or_else(|| app_id.to_owned());
    let mut b = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            spec.sampling_rate,
        ))))
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(name)
                .build(),
        );
    if let Some(o) = &spec.otlp {
        let scheme = if o.secure { "https" } else { "http" };
        let url = match o.endpoint.split_once("://") {
            Some((_, rest)) => format!("{scheme}://{rest}"),
            None => format!("{scheme}://{}", o.endpoint),
        };
        let exporter = if o.http {
            let url = if url.trim_end_matches('/').ends_with("/v1/traces") {
                url
            } else {
                format!("{}/v1/traces", url.trim_end_matches('/'))
            };
            // The exporter's blocking HTTP client may neither be made nor dropped inside the
            // async runtime: it is made on a thread of its own, and used on the batch
            // processor's thread.
            std::thread::spawn(move || {
                opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_endpoint(url)
                    .build()
            })
            .join()
            .map_err(|_| "building the OTLP/HTTP exporter panicked".to_owned())?
        } else {
            let b = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(url);
            if o.secure {
                b.with_tls_config(tonic::transport::ClientTlsConfig::new().with_native_roots())
                    .build()
            } else {
                b.build()
            }
        }
        .map_err(|e| format!("tracing.otel.endpointAddress {}: {e}", o.endpoint))?;
        b = b.with_batch_exporter(exporter);
    }
    if let Some(z) = &spec.zipkin {
        let exporter = std::thread::spawn({
            let z = z.clone();
            // Deprecated upstream in favour of Zipkin's OTLP intake, but what Dapr's
            // `zipkin.endpointAddress` and Layotto's Zipkin driver name.
            #[allow(deprecated)]
            move || {
                opentelemetry_zipkin::ZipkinExporter::builder()
                    .with_collector_endpoint(z)
                    .build()
            }
        })
        .join()
        .map_err(|_| "building the Zipkin exporter panicked".to_owned())?
        .map_err(|e| format!("tracing.zipkin.endpointAddress {z}: {e}"))?;
        b = b.with_batch_exporter(exporter);
    }
    if spec.stdout {
        b = b.with_simple_exporter(StdoutExporter);
    }
    let provider = b.build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    layotto_runtime::trace::enable(spec.sampling_rate);
    Ok(provider)
}

/// Logs each finished span (see the module docs).
#[derive(Debug)]
struct StdoutExporter;

impl opentelemetry_sdk::trace::SpanExporter for StdoutExporter {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        for span in batch {
            let ms = span
                .end_time
                .duration_since(span.start_time)
                .unwrap_or_default()
                .as_millis();
            let result = match &span.status {
                opentelemetry::trace::Status::Error { description } => description.to_string(),
                _ => "OK".to_owned(),
            };
            tracing::info!(
                target: "layotto.trace.stdout",
                method = %span.name,
                trace_id = %span.span_context.trace_id(),
                span_id = %span.span_context.span_id(),
                parent_span_id = %span.parent_span_id,
                start = %epoch_seconds(span.start_time),
                end = %epoch_seconds(span.end_time),
                process_time_ms = ms,
                result,
                "span"
            );
        }
        Ok(())
    }
}

/// `seconds.micros` since the Unix epoch.
fn epoch_seconds(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:06}", d.as_secs(), d.subsec_micros())
}
