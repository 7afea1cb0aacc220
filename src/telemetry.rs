//! Logging and tracing, set up in one place.
//!
//! Logs: `RUST_LOG` filters (default `info`), `LOG_FORMAT=json` for JSON
//! lines, colour only at a terminal. Every line inside a request carries its
//! request span's fields, the trace id among them.
//!
//! Traces: OpenTelemetry over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, off otherwise;
//! `OTEL_EXPORTER_OTLP_PROTOCOL` is `http/protobuf` (default) or `grpc`;
//! `OTEL_SERVICE_NAME` (default `kasvu-gateway`), `OTEL_TRACES_SAMPLER` and
//! `OTEL_TRACES_SAMPLER_ARG` as the specification defines them. Spans carry
//! names, counts, rules, ids and hashes, never a personal value.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

static TRACING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether spans are exported (so per-statement spans are worth making).
pub fn exporting() -> bool {
    TRACING.load(std::sync::atomic::Ordering::Relaxed)
}

/// The trace id of the span being executed, when spans are exported.
pub fn current_trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if !exporting() {
        return None;
    }
    let cx = tracing::Span::current().context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// Makes `span` a child of the W3C `traceparent`/`tracestate` the request
/// carried (when spans are exported).
pub fn set_remote_parent(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if !exporting() {
        return;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|p| {
        p.extract(&opentelemetry_http::HeaderExtractor(headers))
    });
    let _ = span.set_parent(parent);
}

/// Writes `span`'s context into the response as `traceparent`/`tracestate`.
pub fn inject_context(span: &tracing::Span, headers: &mut axum::http::HeaderMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if !exporting() {
        return;
    }
    let cx = span.context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut opentelemetry_http::HeaderInjector(headers))
    });
}

/// Flushes the span exporter when dropped (at the end of `main`).
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("flushing traces failed: {e}");
            }
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Whether an OTLP endpoint is configured (traces are off without one).
pub fn tracing_enabled() -> bool {
    env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
        || env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
}

fn tracer_provider() -> anyhow::Result<Option<SdkTracerProvider>> {
    if !tracing_enabled() {
        return Ok(None);
    }
    let protocol = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "http/protobuf".to_owned());
    // The builders read the endpoint, headers and timeout variables themselves.
    let exporter = match protocol.as_str() {
        "grpc" => SpanExporter::builder().with_tonic().build()?,
        "http/protobuf" => {
            SpanExporter::builder().with_http().with_protocol(Protocol::HttpBinary).build()?
        }
        other => anyhow::bail!("OTEL_EXPORTER_OTLP_PROTOCOL {other:?}: use http/protobuf or grpc"),
    };
    let processor =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
    let service = env("OTEL_SERVICE_NAME").unwrap_or_else(|| "kasvu-gateway".to_owned());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(Some(
        SdkTracerProvider::builder().with_span_processor(processor).with_resource(resource).build(),
    ))
}

/// Sets up logging and, when configured, trace export. Call once, inside
/// the tokio runtime; keep the returned value until the process ends.
pub fn init() -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v == "json");
    // Colour only for a person at a terminal, never in a file or a collector.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // RUST_LOG filters the logs only: traces keep the gateway's own spans
    // whatever the log level.
    let logs = if json {
        fmt::layer().json().with_writer(std::io::stderr).with_filter(filter).boxed()
    } else {
        fmt::layer().with_ansi(ansi).with_writer(std::io::stderr).with_filter(filter).boxed()
    };
    let (provider, problem) = match tracer_provider() {
        Ok(p) => (p, None),
        Err(e) => (None, Some(e)),
    };
    TRACING.store(provider.is_some(), std::sync::atomic::Ordering::Relaxed);
    crate::db::trace_statements(provider.is_some());
    let traces = provider.as_ref().map(|p| {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        tracing_opentelemetry::layer().with_tracer(p.tracer("kasvu-gateway")).with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target("kasvu_gateway", tracing::Level::INFO),
        )
    });
    let _ = tracing_subscriber::registry().with(logs).with(traces).try_init();
    if let Some(e) = problem {
        tracing::error!(error = %format!("{e:#}"), "trace export is off: the OTLP exporter could not be set up");
    }
    Telemetry { provider }
}
