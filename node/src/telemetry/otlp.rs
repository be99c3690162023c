//! OpenTelemetry trace export over OTLP/HTTP with JSON encoding, written here rather than
//! pulling in the OpenTelemetry SDK (whose tonic/prost pins fight ours): one span per
//! data-plane call goes into a bounded queue (full → dropped and counted, never
//! waiting), and a background task posts batches to `{endpoint}/v1/traces` every second
//! or every 512 spans.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderMap;
use prometheus::{IntCounterVec, Opts, Registry};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use super::trace_context::{SpanContext, TraceParent, TRACEPARENT};

/// Spans waiting for export; more are dropped.
const QUEUE: usize = 8192;
/// A batch is sent when it has this many spans…
const BATCH: usize = 512;
/// …or when the oldest waited this long.
const EVERY: Duration = Duration::from_secs(1);
/// How often the exporter looks at the queue: it polls, so that a call never pays for
/// waking it.
const POLL: Duration = Duration::from_millis(100);
/// Bound on one export request.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What the exporter needs from the node's config.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// `http://collector:4318`; spans go to `{endpoint}/v1/traces`.
    pub endpoint: String,
    pub service_name: String,
    /// Share of new traces recorded (0.0..=1.0); calls that bring a `traceparent`
    /// follow its sampled flag instead.
    pub sample_ratio: f64,
    pub node_id: u64,
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Str(String),
    Int(i64),
}

/// One finished call, ready to export.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    pub ctx: SpanContext,
    pub name: String,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    pub attributes: Vec<(&'static str, Attr)>,
    /// A 5xx answer (the server side failed).
    pub error: bool,
}

/// The data plane's handle: starts spans and queues finished ones.
#[derive(Clone)]
pub struct Tracer {
    tx: mpsc::Sender<SpanRecord>,
    sample_ratio: f64,
    dropped: Arc<AtomicU64>,
}

/// A started call's span and where it goes when the call ends.
#[derive(Clone)]
pub struct CallTrace {
    pub ctx: SpanContext,
    pub tracer: Tracer,
}

impl CallTrace {
    /// Queues the finished span if this trace is sampled.
    pub fn finish(self, span: impl FnOnce(SpanContext) -> SpanRecord) {
        if self.ctx.sampled {
            self.tracer.record(span(self.ctx));
        }
    }
}

impl Tracer {
    /// The tracer and its export task (run it until `stopped`; it sends what is queued
    /// before it ends).
    pub fn start(
        cfg: OtlpConfig,
        registry: &Registry,
        stopped: watch::Receiver<bool>,
    ) -> anyhow::Result<(Tracer, impl std::future::Future<Output = ()>)> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let spans = IntCounterVec::new(
            Opts::new(
                "raftgate_otlp_spans_total",
                "Spans by outcome: exported, failed (the collector refused or did not answer), dropped (queue full)",
            ),
            &["result"],
        )?;
        let _ = registry.register(Box::new(spans.clone()));
        let dropped = Arc::new(AtomicU64::new(0));
        let http = reqwest::Client::builder().timeout(TIMEOUT).build()?;
        let url = format!("{}/v1/traces", cfg.endpoint.trim_end_matches('/'));
        let tracer = Tracer {
            tx,
            sample_ratio: cfg.sample_ratio,
            dropped: dropped.clone(),
        };
        let exporter = Exporter {
            rx,
            http,
            url,
            cfg,
            spans,
            dropped,
        };
        Ok((tracer, exporter.run(stopped)))
    }

    /// This call's span context, continuing a valid incoming `traceparent`.
    pub fn begin(&self, headers: &HeaderMap) -> CallTrace {
        let incoming = headers
            .get(TRACEPARENT)
            .and_then(|v| TraceParent::parse(v.as_bytes()));
        CallTrace {
            ctx: SpanContext::start(incoming, self.sample_ratio),
            tracer: self.clone(),
        }
    }

    /// Queues `span`; drops it (counted) when the queue is full.
    pub fn record(&self, span: SpanRecord) {
        if self.tx.try_send(span).is_err() {
            self.dropped.fetch_add(1, Relaxed);
        }
    }
}

struct Exporter {
    rx: mpsc::Receiver<SpanRecord>,
    http: reqwest::Client,
    url: String,
    cfg: OtlpConfig,
    spans: IntCounterVec,
    dropped: Arc<AtomicU64>,
}

impl Exporter {
    async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        let mut batch: Vec<SpanRecord> = Vec::with_capacity(BATCH);
        let mut oldest = Instant::now();
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopping = tokio::select! {
                _ = tick.tick() => false,
                _ = stopped.wait_for(|s| *s) => true,
            };
            let d = self.dropped.swap(0, Relaxed);
            if d > 0 {
                self.spans.with_label_values(&["dropped"]).inc_by(d);
            }
            while let Ok(span) = self.rx.try_recv() {
                if batch.is_empty() {
                    oldest = Instant::now();
                }
                batch.push(span);
                if batch.len() >= BATCH {
                    self.export(&mut batch).await;
                }
            }
            if !batch.is_empty() && (stopping || oldest.elapsed() >= EVERY) {
                self.export(&mut batch).await;
            }
            if stopping {
                return;
            }
        }
    }

    async fn export(&self, batch: &mut Vec<SpanRecord>) {
        let body = export_body(&self.cfg, batch);
        let n = batch.len() as u64;
        batch.clear();
        let r = self
            .http
            .post(&self.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await;
        let outcome = match r {
            Ok(resp) if resp.status().is_success() => "exported",
            Ok(resp) => {
                tracing::warn!(status = %resp.status(), url = %self.url, "OTLP export refused");
                "failed"
            }
            Err(e) => {
                tracing::warn!(error = %e, url = %self.url, "OTLP export failed");
                "failed"
            }
        };
        self.spans.with_label_values(&[outcome]).inc_by(n);
    }
}

fn attr_json(key: &str, v: &Attr) -> Value {
    // OTLP JSON: 64-bit integers are strings.
    let value = match v {
        Attr::Str(s) => json!({"stringValue": s}),
        Attr::Int(i) => json!({"intValue": i.to_string()}),
    };
    json!({"key": key, "value": value})
}

/// An `ExportTraceServiceRequest` in the OTLP JSON mapping: lowerCamelCase names, ids
/// as lowercase hex, times as decimal strings of Unix nanoseconds, enums as numbers.
pub fn export_body(cfg: &OtlpConfig, spans: &[SpanRecord]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let mut span = json!({
                "traceId": hex::encode(s.ctx.trace_id),
                "spanId": hex::encode(s.ctx.span_id),
                "name": s.name,
                "kind": 2, // SPAN_KIND_SERVER
                "startTimeUnixNano": s.start_unix_ns.to_string(),
                "endTimeUnixNano": s.end_unix_ns.to_string(),
                "attributes": s.attributes.iter().map(|(k, v)| attr_json(k, v)).collect::<Vec<_>>(),
                // STATUS_CODE_ERROR for 5xx, else UNSET.
                "status": if s.error { json!({"code": 2}) } else { json!({}) },
            });
            if let Some(p) = s.ctx.parent_span_id {
                span["parentSpanId"] = json!(hex::encode(p));
            }
            span
        })
        .collect();
    json!({
        "resourceSpans": [{
            "resource": {"attributes": [
                attr_json("service.name", &Attr::Str(cfg.service_name.clone())),
                attr_json("service.instance.id", &Attr::Str(cfg.node_id.to_string())),
            ]},
            "scopeSpans": [{
                "scope": {"name": "raftgate", "version": env!("CARGO_PKG_VERSION")},
                "spans": spans,
            }],
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> OtlpConfig {
        OtlpConfig {
            endpoint: "http://127.0.0.1:1".into(),
            service_name: "gw".into(),
            sample_ratio: 1.0,
            node_id: 7,
        }
    }

    fn span(parent: Option<[u8; 8]>, error: bool) -> SpanRecord {
        SpanRecord {
            ctx: SpanContext {
                trace_id: [0xab; 16],
                span_id: [0x01, 2, 3, 4, 5, 6, 7, 8],
                parent_span_id: parent,
                sampled: true,
            },
            name: "GET r1".into(),
            start_unix_ns: 1_700_000_000_000_000_000,
            end_unix_ns: 1_700_000_000_250_000_000,
            attributes: vec![
                ("http.request.method", Attr::Str("GET".into())),
                ("http.response.status_code", Attr::Int(503)),
            ],
            error,
        }
    }

    #[test]
    fn body_follows_the_otlp_json_mapping() {
        let b = export_body(&cfg(), &[span(Some([9; 8]), true), span(None, false)]);
        let rs = &b["resourceSpans"][0];
        assert_eq!(
            rs["resource"]["attributes"][0],
            json!({"key": "service.name", "value": {"stringValue": "gw"}})
        );
        assert_eq!(rs["resource"]["attributes"][1]["value"]["stringValue"], "7");
        let spans = rs["scopeSpans"][0]["spans"].as_array().unwrap();
        assert_eq!(spans.len(), 2);
        let s = &spans[0];
        assert_eq!(s["traceId"], "abababababababababababababababab");
        assert_eq!(s["spanId"], "0102030405060708");
        assert_eq!(s["parentSpanId"], "0909090909090909");
        assert_eq!(s["kind"], 2);
        assert_eq!(s["startTimeUnixNano"], "1700000000000000000");
        assert_eq!(s["endTimeUnixNano"], "1700000000250000000");
        assert_eq!(s["status"]["code"], 2);
        assert_eq!(
            s["attributes"][1],
            json!({"key": "http.response.status_code", "value": {"intValue": "503"}})
        );
        assert!(spans[1].get("parentSpanId").is_none());
        assert_eq!(spans[1]["status"], json!({}));
    }

    #[tokio::test]
    async fn a_full_queue_drops_instead_of_waiting() {
        let (_stop, stopped) = watch::channel(false);
        let (tracer, _task) = Tracer::start(cfg(), &Registry::new(), stopped).unwrap();
        // The export task is not running: nothing drains the queue.
        for _ in 0..QUEUE + 10 {
            tracer.record(span(None, false));
        }
        assert_eq!(tracer.dropped.load(Relaxed), 10);
    }

    #[test]
    fn begin_continues_a_valid_traceparent_and_ignores_a_bad_one() {
        let (tx, _rx) = mpsc::channel(1);
        let t = Tracer {
            tx,
            sample_ratio: 0.0,
            dropped: Arc::default(),
        };
        let mut h = HeaderMap::new();
        h.insert(
            TRACEPARENT,
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        let c = t.begin(&h).ctx;
        assert_eq!(hex::encode(c.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            c.parent_span_id.map(hex::encode).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert!(c.sampled);
        h.insert(TRACEPARENT, http::HeaderValue::from_static("00-nope"));
        let c = t.begin(&h).ctx;
        assert_eq!(c.parent_span_id, None);
        assert!(!c.sampled, "a new trace at ratio 0");
    }
}
