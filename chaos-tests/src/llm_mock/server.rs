//! The server loop (as in `upstream`: HTTP/1.1 keep-alive or h2c, one task per connection)
//! and what every flavor shares: recording, faults, latency, response and SSE building.

use std::convert::Infallible;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::stream;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::{anthropic, gemini, openai, Fault, Flavor, RecordedRequest, Shared};

pub(crate) type Body = UnsyncBoxBody<Bytes, io::Error>;

/// Returned by the service to close the connection without an answer.
#[derive(Debug, thiserror::Error)]
#[error("llm mock: {0}")]
pub(crate) struct Abort(&'static str);

/// A request as the flavors see it.
#[derive(Debug)]
pub(crate) struct Call {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// `Null` when empty; the lossy text when not JSON (then `body_is_json` is false).
    pub body: Value,
    pub body_is_json: bool,
}

impl Call {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        super::text::query_param(self.query.as_deref(), name)
    }

    /// The body if it is a JSON object.
    pub fn object(&self) -> Option<&Value> {
        (self.body_is_json && self.body.is_object()).then_some(&self.body)
    }
}

/// What a flavor answers; [`respond`] turns it into a response.
#[derive(Debug)]
pub(crate) enum Reply {
    Json {
        status: StatusCode,
        content_type: &'static str,
        headers: Vec<(&'static str, String)>,
        body: Value,
    },
    /// A 200 whose body is sent one chunk at a time, `chunk_delay` apart.
    Stream {
        content_type: &'static str,
        headers: Vec<(&'static str, String)>,
        chunks: Vec<Bytes>,
    },
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply::Json {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            content_type: "application/json",
            headers: Vec::new(),
            body,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        match &mut self {
            Reply::Json { headers, .. } | Reply::Stream { headers, .. } => {
                headers.push((name, value.into()))
            }
        }
        self
    }

    pub fn content_type(mut self, value: &'static str) -> Reply {
        match &mut self {
            Reply::Json { content_type, .. } | Reply::Stream { content_type, .. } => {
                *content_type = value
            }
        }
        self
    }
}

/// `data: JSON\n\n`.
pub(crate) fn sse_data(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// `event: NAME\ndata: JSON\n\n`.
pub(crate) fn sse_event(name: &str, value: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {value}\n\n"))
}

pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(serve_connection(stream, shared.clone()));
                }
                // EMFILE and the like: back off briefly instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
    let builder = auto::Builder::new(TokioExecutor::new());
    // Errors (a client going away, a fault) end only this connection.
    let _ = builder
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Abort> {
    shared.hits.fetch_add(1, Ordering::Relaxed);
    let (parts, incoming) = req.into_parts();
    let bytes = incoming
        .collect()
        .await
        .map_err(|_| Abort("the request body broke off"))?
        .to_bytes();
    let (body, body_is_json) = if bytes.is_empty() {
        (Value::Null, true)
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(v) => (v, true),
            Err(_) => (Value::String(String::from_utf8_lossy(&bytes).into()), false),
        }
    };
    let call = Call {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
        body_is_json,
    };
    if shared.opts.record {
        let recorded = RecordedRequest {
            method: call.method.to_string(),
            path: call.path.clone(),
            query: call.query.clone(),
            headers: call.headers.clone(),
            body: call.body.clone(),
            at: std::time::Instant::now(),
        };
        shared
            .recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(recorded);
    }
    let fault = shared.take_fault();
    match fault {
        Fault::Hang => return std::future::pending().await,
        Fault::Reset => return Err(Abort("reset fault")),
        _ => {}
    }
    if !shared.opts.latency.is_zero() {
        tokio::time::sleep(shared.opts.latency).await;
    }
    let (reply, cut) = match fault {
        Fault::Status {
            status,
            retry_after_secs,
            ..
        } => (fault_reply(&shared, status, retry_after_secs), None),
        Fault::DisconnectMidStream { after_chunks } => (route(&shared, &call), Some(after_chunks)),
        _ => (route(&shared, &call), None),
    };
    Ok(respond(&shared, reply, cut))
}

fn route(shared: &Shared, call: &Call) -> Reply {
    match shared.opts.flavor {
        Flavor::OpenAi | Flavor::Azure => openai::handle(shared, call),
        Flavor::Anthropic => anthropic::handle(shared, call),
        Flavor::Gemini => gemini::handle(shared, call),
    }
}

fn fault_reply(shared: &Shared, status: u16, retry_after: Option<u64>) -> Reply {
    let reply = match shared.opts.flavor {
        Flavor::OpenAi => openai::fault(false, status, retry_after),
        Flavor::Azure => openai::fault(true, status, retry_after),
        Flavor::Anthropic => anthropic::fault(shared, status),
        Flavor::Gemini => gemini::fault(status, retry_after),
    };
    match retry_after {
        Some(secs) if shared.opts.flavor == Flavor::Azure => reply
            .header("retry-after", secs.to_string())
            .header("retry-after-ms", (secs * 1000).to_string()),
        Some(secs) => reply.header("retry-after", secs.to_string()),
        None => reply,
    }
}

fn insert(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        headers.insert(name, value);
    }
}

fn respond(shared: &Shared, reply: Reply, cut: Option<usize>) -> Response<Body> {
    let (status, content_type, extra, body, length) = match reply {
        Reply::Json {
            status,
            content_type,
            headers,
            body,
        } => {
            let bytes = Bytes::from(body.to_string());
            let len = bytes.len();
            let body = match cut {
                // Half the body, then a broken connection (Content-Length says more).
                Some(_) => chunked_body(vec![bytes.slice(..len / 2)], Some(1), Duration::ZERO),
                None => Full::new(bytes)
                    .map_err(|never: Infallible| match never {})
                    .boxed_unsync(),
            };
            (status, content_type, headers, body, Some(len))
        }
        Reply::Stream {
            content_type,
            headers,
            chunks,
        } => {
            let body = chunked_body(chunks, cut, shared.opts.chunk_delay);
            (StatusCode::OK, content_type, headers, body, None)
        }
    };
    let mut res = Response::new(body);
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let (Some(len), Some(_)) = (length, cut) {
        h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
    if content_type.starts_with("text/event-stream") {
        h.insert("cache-control", HeaderValue::from_static("no-cache"));
    }
    insert(h, "x-mock-name", &shared.opts.name);
    for (name, value) in &extra {
        insert(h, name, value);
    }
    res
}

/// The chunks one frame each, `delay` apart; with `cut`, an error (the connection is
/// dropped, no end of body) after `cut` chunks, or after the last one if fewer.
fn chunked_body(chunks: Vec<Bytes>, cut: Option<usize>, delay: Duration) -> Body {
    let cut = cut.map(|n| n.min(chunks.len()));
    let state = (chunks.into_iter(), 0usize, false);
    let frames = stream::unfold(state, move |(mut it, i, done)| async move {
        if done {
            return None;
        }
        if cut == Some(i) {
            // Let hyper flush what came before (it may not when the body fails at once).
            tokio::time::sleep(Duration::from_millis(5)).await;
            let err = io::Error::other("llm mock: disconnect mid-stream");
            return Some((Err(err), (it, i + 1, true)));
        }
        let chunk = it.next()?;
        if i > 0 && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Some((Ok(Frame::data(chunk)), (it, i + 1, false)))
    });
    BodyExt::boxed_unsync(StreamBody::new(frames))
}
