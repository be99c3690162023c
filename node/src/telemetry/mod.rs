//! Exporters of what the data plane did, besides Prometheus and the call log: the
//! rotating JSON-lines access log file and OpenTelemetry traces (docs/observability.md).

pub mod otlp;
pub mod rotate;
pub mod trace_context;
