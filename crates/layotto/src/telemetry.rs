//! The span exporters: the OpenTelemetry SDK's tracer provider, installed as the global one, for
//! Dapr's Configuration `spec.tracing` (OTLP over gRPC or HTTP, Zipkin; `samplingRate`) or a
//! Layotto config's `tracing` section.
//!
//! Sampling is daprd's: a sampled parent is followed, new traces are sampled at `samplingRate`
//! (0: none). The service name is the app id unless the Layotto section names one.

use layotto_config::TracingSpec;
use opentelemetry_otlp::WithExportConfig as _;
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
        if o.secure {
            return Err(format!(
                "tracing.otel.isSecure: TLS to the collector {} is not supported yet",
                o.endpoint
            ));
        }
        let url = if o.endpoint.contains("://") {
            o.endpoint.clone()
        } else {
            format!("http://{}", o.endpoint)
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
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(url)
                .build()
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
    let provider = b.build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    layotto_runtime::trace::enable(spec.sampling_rate);
    Ok(provider)
}
