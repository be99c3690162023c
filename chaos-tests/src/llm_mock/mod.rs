//! Mock LLM providers on real sockets: OpenAI, Azure OpenAI, Anthropic and Gemini, each
//! speaking its provider's wire format (JSON bodies, SSE streams, error objects, auth
//! headers) as the public API references document it, with deterministic content so tests
//! can assert exact texts and token counts. The `raftgate-llm-mock` binary runs the same
//! code for benchmarks.
//!
//! # Endpoints and base URLs ([`MockProvider::base_url`])
//! - [`Flavor::OpenAi`], base URL `http://ADDR/v1` (what the official SDKs call `base_url`):
//!   `POST /v1/chat/completions`, `POST /v1/embeddings`, `GET /v1/models[/{id}]`; key in
//!   `Authorization: Bearer`.
//! - [`Flavor::Azure`], base URL `http://ADDR` (the SDKs' `azure_endpoint`):
//!   `POST /openai/deployments/{deployment}/chat/completions?api-version=...` and
//!   `.../embeddings`; key in `api-key`; a missing `api-version` is a 404 as on Azure.
//!   Streams begin with Azure's `prompt_filter_results` chunk whose `choices` is empty.
//! - [`Flavor::Anthropic`], base URL `http://ADDR`: `POST /v1/messages`,
//!   `POST /v1/messages/count_tokens`, `GET /v1/models`; `x-api-key` and
//!   `anthropic-version` required; `max_tokens` required.
//! - [`Flavor::Gemini`], base URL `http://ADDR`: `POST /{v1beta|v1}/models/{model}:`
//!   `generateContent`, `streamGenerateContent` (`alt=sse`: SSE with CRLF framing;
//!   without: one streamed JSON array), `embedContent`, `batchEmbedContents`,
//!   `GET /v1beta/models`; key in `x-goog-api-key` or `?key=`.
//!
//! # Content and token counting
//! The reply is `"mock reply to: <text of the last user message>"` (or
//! [`MockOptions::reply`]), streamed one word (plus the whitespace after it) per delta.
//! Tokens are whitespace-separated words: input = every text of every message plus the
//! system prompt (tool definitions, tool-call arguments and images do not count); output =
//! words of the reply, truncated to the request's max tokens (then finish reason
//! `length` / `max_tokens` / `MAX_TOKENS`). Tool calls: when the request declares tools and
//! the tool choice is not none, the reply calls the forced tool or else the first one, with
//! arguments derived from its JSON schema (first `enum` value, `"mock"`, `1`, `true`, `[]`,
//! nested objects) serialized as `{"key": value, "key2": value}`; output tokens = words of
//! that string, streamed one word per delta. Exception: with automatic tool choice, a
//! request whose last message is a tool result gets a text reply (so agent loops end).
//! Embeddings: unit vectors of 8 dimensions (or the requested dimensions) from SHA-256 of
//! the input; usage = words of the inputs (OpenAI; Gemini embed responses carry no usage).
//!
//! Every response carries `x-mock-name: <MockOptions::name>`.

mod anthropic;
mod gemini;
mod openai;
mod server;
mod text;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use hyper::HeaderMap;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use text::{embedding, tool_arguments, words};

/// Which provider's API the mock speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    OpenAi,
    Azure,
    Anthropic,
    Gemini,
}

impl Flavor {
    /// `openai`, `azure`, `anthropic`, `gemini`.
    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::OpenAi => "openai",
            Flavor::Azure => "azure",
            Flavor::Anthropic => "anthropic",
            Flavor::Gemini => "gemini",
        }
    }
}

impl std::str::FromStr for Flavor {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Flavor> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "openai" => Flavor::OpenAi,
            "azure" => Flavor::Azure,
            "anthropic" => Flavor::Anthropic,
            "gemini" => Flavor::Gemini,
            other => anyhow::bail!("unknown flavor {other:?} (openai|azure|anthropic|gemini)"),
        })
    }
}

/// What to start; `MockOptions::new(flavor)` accepts any key, answers at once, on
/// `127.0.0.1:0`, recording requests.
#[derive(Debug, Clone)]
pub struct MockOptions {
    pub flavor: Flavor,
    /// The expected key; `None` accepts any (a key must still be sent, as on the real API).
    pub api_key: Option<String>,
    /// Waited before every response head (errors included).
    pub latency: Duration,
    /// Waited between two stream chunks (SSE events, or Gemini JSON-array elements).
    pub chunk_delay: Duration,
    /// A fixed reply text instead of `"mock reply to: ..."`.
    pub reply: Option<String>,
    /// Sent as `x-mock-name` on every response.
    pub name: String,
    /// Where to listen.
    pub addr: SocketAddr,
    /// Keep every request for [`MockProvider::requests`] (turn off for long benchmarks).
    pub record: bool,
}

impl MockOptions {
    pub fn new(flavor: Flavor) -> MockOptions {
        MockOptions {
            flavor,
            api_key: None,
            latency: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            reply: None,
            name: flavor.as_str().into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            record: true,
        }
    }

    pub fn api_key(mut self, key: &str) -> MockOptions {
        self.api_key = Some(key.into());
        self
    }

    pub fn name(mut self, name: &str) -> MockOptions {
        self.name = name.into();
        self
    }

    pub fn reply(mut self, reply: &str) -> MockOptions {
        self.reply = Some(reply.into());
        self
    }

    pub fn latency(mut self, latency: Duration) -> MockOptions {
        self.latency = latency;
        self
    }

    pub fn chunk_delay(mut self, delay: Duration) -> MockOptions {
        self.chunk_delay = delay;
        self
    }
}

impl Default for MockOptions {
    fn default() -> MockOptions {
        MockOptions::new(Flavor::OpenAi)
    }
}

/// A failure to inject, from the next request on (see [`MockProvider::set_fault`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Fault {
    #[default]
    None,
    /// Answer with this status and the provider's error body (plus `Retry-After`, and on
    /// Azure `retry-after-ms`, on Gemini a `RetryInfo` detail, when set); after `times`
    /// requests (`None`: forever) the fault clears itself.
    Status {
        status: u16,
        retry_after_secs: Option<u64>,
        times: Option<u32>,
    },
    /// Read the request and never answer (the connection stays open).
    Hang,
    /// Send the head and `after_chunks` stream chunks (SSE events; Gemini array elements),
    /// then drop the connection. A non-stream answer is cut after half of its body (whose
    /// `Content-Length` announced the whole).
    DisconnectMidStream { after_chunks: usize },
    /// Read the request and close the connection without an answer.
    Reset,
}

/// One request as it reached the mock.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// The JSON body; `Null` when empty, a `String` (lossy UTF-8) when not JSON.
    pub body: serde_json::Value,
    pub at: Instant,
}

impl RecordedRequest {
    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A query parameter (not percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        text::query_param(self.query.as_deref(), name)
    }
}

/// State shared by the accept loop and every request.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) opts: MockOptions,
    pub(crate) hits: AtomicU64,
    pub(crate) seq: AtomicU64,
    /// Fast path: no lock per request while no fault is set.
    fault_set: AtomicBool,
    fault: Mutex<Fault>,
    pub(crate) recorded: Mutex<Vec<RecordedRequest>>,
}

impl Shared {
    /// A fresh number for response and tool-call ids.
    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The fault for this request, counting down `Status { times }`.
    pub(crate) fn take_fault(&self) -> Fault {
        if !self.fault_set.load(Ordering::Acquire) {
            return Fault::None;
        }
        let mut fault = self.fault.lock().unwrap_or_else(|e| e.into_inner());
        let current = fault.clone();
        if let Fault::Status {
            times: Some(n),
            status,
            retry_after_secs,
        } = *fault
        {
            if n <= 1 {
                *fault = Fault::None;
                self.fault_set.store(false, Ordering::Release);
            } else {
                *fault = Fault::Status {
                    status,
                    retry_after_secs,
                    times: Some(n - 1),
                };
            }
            if n == 0 {
                return Fault::None;
            }
        }
        current
    }
}

/// A running mock provider; stops (listener closed, connections dropped) when dropped.
#[derive(Debug)]
pub struct MockProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl MockProvider {
    /// Binds and starts serving on the current tokio runtime; the socket accepts connections
    /// when this returns.
    pub async fn start(opts: MockOptions) -> anyhow::Result<MockProvider> {
        let listener = TcpListener::bind(opts.addr)
            .await
            .with_context(|| format!("binding the LLM mock to {}", opts.addr))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let shared = Arc::new(Shared {
            opts,
            hits: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            fault_set: AtomicBool::new(false),
            fault: Mutex::new(Fault::None),
            recorded: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(server::accept_loop(listener, shared.clone()));
        Ok(MockProvider { addr, shared, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn flavor(&self) -> Flavor {
        self.shared.opts.flavor
    }

    pub fn name(&self) -> &str {
        &self.shared.opts.name
    }

    /// What a client SDK takes as its base URL: `http://ADDR/v1` for OpenAI,
    /// `http://ADDR` for Azure (`azure_endpoint`), Anthropic and Gemini.
    pub fn base_url(&self) -> String {
        match self.flavor() {
            Flavor::OpenAi => format!("http://{}/v1", self.addr),
            _ => format!("http://{}", self.addr),
        }
    }

    /// Takes effect for the next request. Panics on a status outside 100..=999.
    pub fn set_fault(&self, fault: Fault) {
        if let Fault::Status { status, .. } = fault {
            assert!(
                (100..=999).contains(&status),
                "Fault::Status({status}): not an HTTP status"
            );
        }
        let set = fault != Fault::None;
        *self.shared.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
        self.shared.fault_set.store(set, Ordering::Release);
    }

    /// The current fault (`Status { times }` counts down as requests arrive).
    pub fn fault(&self) -> Fault {
        self.shared
            .fault
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every request received so far (if [`MockOptions::record`]), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn clear_requests(&self) {
        self.shared
            .recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Requests received, whatever their path, auth or fault.
    pub fn hits(&self) -> u64 {
        self.shared.hits.load(Ordering::Relaxed)
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}
