//! Logs for every subcommand: one `--log-format` (`text` or `json`,
//! `CPOR_LOG_FORMAT`) and one filter (`RUST_LOG`, `tracing-subscriber`'s
//! `EnvFilter` syntax), set up once in `main` before the subcommand runs.
//!
//! Logs go to stderr; a subcommand's output (an export, a report, a reply)
//! goes to stdout, so the two never mix. Without `RUST_LOG`, `serve` logs
//! at `info` ([`SERVE_FILTER`]) and the one-shot tools only warnings and
//! errors ([`TOOL_FILTER`]), so their stderr carries only what went wrong.

use crate::config::LogFormat;

/// The default filter of `cpor serve`: what it does at `info`, async-nats'
/// own chatter only from `warn`.
pub(crate) const SERVE_FILTER: &str = "info,async_nats=warn";
/// The default filter of every other subcommand.
pub(crate) const TOOL_FILTER: &str = "warn";

/// The variables that turn OTLP export on (the OpenTelemetry
/// specification's; the exporter reads them and the other `OTEL_*` ones).
pub(crate) const OTLP_ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
];

/// Keeps the tracer provider of `serve` alive; dropping it flushes the
/// spans not yet exported.
pub(crate) struct Telemetry {
    /// `None` for the one-shot tools, which have no spans to export.
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(error) = provider.shutdown() {
                eprintln!("cpor: exporting the last spans: {error}");
            }
        }
    }
}

/// Installs the global subscriber: `RUST_LOG` when set (and valid), else
/// `default_filter`, in `format`, on stderr. With `spans`, also the
/// OpenTelemetry layer, so a request's `traceparent` parents its span and
/// the span's context goes on its events (`cpor_nats::trace`); its spans are
/// exported by OTLP/HTTP when [`OTLP_ENDPOINT_VARS`] names a collector, and
/// only given ids otherwise.
///
/// # Errors
/// When the OTLP exporter cannot be built from the `OTEL_*` variables.
pub(crate) fn init(
    format: LogFormat,
    default_filter: &str,
    spans: bool,
) -> anyhow::Result<Telemetry> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let text = (format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_ansi(colour_on_stderr())
            .with_writer(std::io::stderr)
    });
    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
    });
    let provider = spans.then(tracer_provider).transpose()?;
    let otel = provider.as_ref().map(|provider| {
        use opentelemetry::trace::TracerProvider;
        tracing_opentelemetry::layer().with_tracer(provider.tracer("cpor"))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .with(otel)
        .init();
    Ok(Telemetry { provider })
}

/// Whether an OTLP endpoint is configured.
fn otlp_configured() -> bool {
    OTLP_ENDPOINT_VARS
        .iter()
        .any(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()))
}

/// A tracer provider for `serve`: service name `cpor` (unless
/// `OTEL_SERVICE_NAME` says otherwise), spans exported in batches by
/// OTLP/HTTP (protobuf) when configured.
fn tracer_provider() -> anyhow::Result<opentelemetry_sdk::trace::SdkTracerProvider> {
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("cpor")
        .build();
    let mut builder =
        opentelemetry_sdk::trace::SdkTracerProvider::builder().with_resource(resource);
    if otlp_configured() {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| {
                anyhow::anyhow!("cannot set up OTLP export from the OTEL_* variables: {e}")
            })?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

/// Colours only for a person at a terminal: stderr is a terminal and
/// `NO_COLOR` is unset or empty (<https://no-color.org>). Log files and
/// journald get plain text.
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
