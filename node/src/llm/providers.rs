//! Calls to providers: one request per attempt in the provider's own wire format, its
//! answer turned into the canonical OpenAI shape (whole, or a stream of chunks).

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use http::Response;
use http_body_util::BodyExt;
use hyper::body::{Body, Bytes};
use raftgate_store::model::{Provider, ProviderType};
use serde_json::Value;

use super::answer::Whole;
use super::chunk::Chunk;
use super::mock;
use super::translate::sse::{SseEvent, SseParser};
use super::translate::{anthropic, gemini, openai, TranslateError};
use super::transport::{percent_encode, ProviderHttp, ProviderRequest, TransportError};
use crate::proxy::{BoxError, ProxyBody};

/// Largest non-streamed provider answer read.
const MAX_BODY: usize = 32 * 1024 * 1024;
/// How long, and how much, a stream's body is read after its last event.
const DRAIN_WAIT: Duration = Duration::from_secs(1);
const DRAIN_MAX: usize = 64 * 1024;
/// The Anthropic API version sent.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Where one attempt goes.
pub struct Target<'a> {
    pub provider: &'a Provider,
    /// The provider's key, decrypted.
    pub api_key: Option<String>,
    pub upstream_model: &'a str,
    pub public_model: &'a str,
}

/// Why an attempt failed, and whether another deployment may be tried.
#[derive(Debug, Clone)]
pub struct AttemptError {
    /// 429, 5xx, timeouts and connection errors: try the next deployment.
    pub retryable: bool,
    /// The provider's status, if it answered.
    pub status: Option<u16>,
    pub retry_after: Option<Duration>,
    pub message: String,
}

impl AttemptError {
    fn transport(e: &TransportError) -> AttemptError {
        AttemptError {
            retryable: true,
            status: None,
            retry_after: None,
            message: e.to_string(),
        }
    }

    /// No chunk came for `idle`.
    pub fn idle(idle: Duration) -> AttemptError {
        AttemptError {
            retryable: true,
            status: None,
            retry_after: None,
            message: format!("provider stream idle for {idle:?}"),
        }
    }

    /// The answer's body broke off.
    fn body(e: &BoxError) -> AttemptError {
        AttemptError::transport(&TransportError {
            what: "transport error",
            detail: e.to_string(),
        })
    }

    fn bad_answer(e: impl std::fmt::Display) -> AttemptError {
        AttemptError {
            retryable: true,
            status: None,
            retry_after: None,
            message: format!("provider answer not understood: {e}"),
        }
    }
}

/// A canonical answer.
pub enum Answer {
    Whole(Whole),
    Stream(Box<ChunkStream>),
}

/// Canonical `chat.completion.chunk`s from a provider stream.
pub struct ChunkStream {
    source: Source,
    parser: SseParser,
    decoder: Decoder,
    ready: VecDeque<Chunk>,
    done: bool,
    last_read: Instant,
    /// Bytes read after the last event (see [`ChunkStream::poll_drain`]).
    drained: usize,
}

enum Source {
    Http(ProxyBody),
    Mock,
}

enum Decoder {
    OpenAi,
    Anthropic(anthropic::AnthropicToOpenaiStream),
    Gemini(gemini::GeminiToOpenaiStream),
}

impl ChunkStream {
    fn http(resp: Response<ProxyBody>, decoder: Decoder) -> ChunkStream {
        ChunkStream {
            source: Source::Http(resp.into_body()),
            parser: SseParser::new(),
            decoder,
            ready: VecDeque::new(),
            done: false,
            last_read: Instant::now(),
            drained: 0,
        }
    }

    /// An OpenAI-format stream read from `body` (tests of what reads it).
    #[cfg(test)]
    pub(crate) fn openai_body(body: ProxyBody) -> ChunkStream {
        ChunkStream::http(Response::new(body), Decoder::OpenAi)
    }

    pub fn mock(chunks: Vec<Value>) -> ChunkStream {
        ChunkStream {
            source: Source::Mock,
            parser: SseParser::new(),
            decoder: Decoder::OpenAi,
            ready: chunks.into_iter().map(Chunk::Value).collect(),
            done: true,
            last_read: Instant::now(),
            drained: 0,
        }
    }

    /// The next chunk; `None` at the end of the stream. `idle` bounds the wait for it.
    pub async fn next(&mut self, idle: Duration) -> Result<Option<Chunk>, AttemptError> {
        match tokio::time::timeout(idle, std::future::poll_fn(|cx| self.poll_next(cx))).await {
            Ok(r) => r,
            Err(_) => Err(AttemptError::idle(idle)),
        }
    }

    /// The next chunk as the provider's bytes arrive, read on the caller's task: the
    /// client's body polls this directly, so a streamed answer needs no task of its own.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Chunk>, AttemptError>> {
        loop {
            if let Some(c) = self.ready.pop_front() {
                return Poll::Ready(Ok(Some(c)));
            }
            if self.done {
                return Poll::Ready(Ok(None));
            }
            let Source::Http(body) = &mut self.source else {
                return Poll::Ready(Ok(None));
            };
            let bytes = match ready!(Pin::new(body).poll_frame(cx)) {
                Some(Err(e)) => return Poll::Ready(Err(AttemptError::body(&e))),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(b) => b,
                    Err(_) => continue, // trailers
                },
                None => {
                    // Gemini has no end event: flush what the parser and decoder hold.
                    self.done = true;
                    let tail = self.parser.finish();
                    for ev in tail {
                        self.decode(ev)?;
                    }
                    if let Decoder::Gemini(d) = &mut self.decoder {
                        self.ready.extend(d.finish().into_iter().map(Chunk::Value));
                    }
                    continue;
                }
            };
            self.last_read = Instant::now();
            let events = self.parser.push(&bytes).map_err(AttemptError::bad_answer)?;
            for ev in events {
                self.decode(ev)?;
            }
        }
    }

    /// When the provider last sent bytes (or the stream was opened): what an idle
    /// timeout counts from. Keep-alive events with no chunk in them count too.
    pub fn last_read(&self) -> Instant {
        self.last_read
    }

    /// Reads what follows the stream's last event — with OpenAI's format the body goes on
    /// after `[DONE]`, at least with its last chunk — so that the connection goes back
    /// to the pool instead of being closed with the body unread (a new connection per
    /// streamed call was a fifth of the gateway's CPU). Ready when the body ended, broke,
    /// or passed [`DRAIN_MAX`] (then it is closed when dropped).
    pub fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Source::Http(body) = &mut self.source else {
            return Poll::Ready(());
        };
        while self.drained <= DRAIN_MAX {
            match ready!(Pin::new(&mut *body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    self.drained += frame.data_ref().map_or(0, Bytes::len);
                }
                Some(Err(_)) | None => return Poll::Ready(()),
            }
        }
        Poll::Ready(())
    }

    /// [`poll_drain`](Self::poll_drain) on a task of its own, for a body whose end has not
    /// arrived yet; a provider holding it open past [`DRAIN_WAIT`] is cut off.
    pub fn drain_later(mut self) {
        tokio::spawn(async move {
            let _ =
                tokio::time::timeout(DRAIN_WAIT, std::future::poll_fn(|cx| self.poll_drain(cx)))
                    .await;
        });
    }

    fn decode(&mut self, ev: SseEvent) -> Result<(), AttemptError> {
        match &mut self.decoder {
            Decoder::OpenAi => {
                if ev.data.trim() == "[DONE]" {
                    self.done = true;
                    return Ok(());
                }
                let c = Chunk::parse(ev.data).map_err(AttemptError::bad_answer)?;
                if let Some(msg) = c.error() {
                    return Err(AttemptError::bad_answer(format!("stream error: {msg}")));
                }
                self.ready.push_back(c);
            }
            Decoder::Anthropic(d) => {
                let chunks = d.on_event(&ev).map_err(stream_error)?;
                self.ready.extend(chunks.into_iter().map(Chunk::Value));
            }
            Decoder::Gemini(d) => {
                let chunks = d.on_event(&ev).map_err(stream_error)?;
                self.ready.extend(chunks.into_iter().map(Chunk::Value));
            }
        }
        Ok(())
    }
}

fn stream_error(e: TranslateError) -> AttemptError {
    AttemptError::bad_answer(e)
}

fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// The request of one chat attempt, in the provider's format, with its URL.
fn chat_request(
    http: &ProviderHttp,
    t: &Target<'_>,
    req: &Value,
    stream: bool,
) -> Result<ProviderRequest, TranslateError> {
    let base = t.provider.base_url.as_deref().unwrap_or_default();
    let key = t.api_key.as_deref().unwrap_or_default();
    let rb = match t.provider.provider_type {
        ProviderType::Openai => {
            let body = openai::upstream_body(req, t.upstream_model, stream);
            http.post(join(base, "/chat/completions"))
                .bearer_auth(key)
                .json(&body)
        }
        ProviderType::AzureOpenai => {
            let body = openai::upstream_body(req, t.upstream_model, stream);
            let url = join(
                base,
                &format!(
                    "/openai/deployments/{}/chat/completions",
                    percent_encode(t.upstream_model)
                ),
            );
            http.post(url)
                .query(&[(
                    "api-version",
                    t.provider.api_version.as_deref().unwrap_or_default(),
                )])
                .header("api-key", key)
                .json(&body)
        }
        ProviderType::Anthropic => {
            let body = anthropic::request_to_anthropic(req, t.upstream_model)?;
            http.post(join(base, "/v1/messages"))
                .header("x-api-key", key)
                .header("anthropic-version", ANTHROPIC_VERSION)
                .json(&body)
        }
        ProviderType::Gemini => {
            let body = gemini::request_to_gemini(req)?;
            let (verb, query) = if stream {
                ("streamGenerateContent", "?alt=sse")
            } else {
                ("generateContent", "")
            };
            let url = join(
                base,
                &format!(
                    "/v1beta/models/{}:{verb}{query}",
                    percent_encode(t.upstream_model)
                ),
            );
            http.post(url).header("x-goog-api-key", key).json(&body)
        }
        ProviderType::Mock => {
            return Err(TranslateError::Invalid(
                "the mock provider is served in-process".into(),
            ))
        }
    };
    let mut rb = rb;
    for (k, v) in &t.provider.headers {
        rb = rb.header(k.as_str(), v.as_str());
    }
    Ok(rb)
}

/// One chat attempt. `Err(Ok(e))`: the client's request cannot be sent to this provider
/// (an unsupported parameter); `Err(Err(e))`: the attempt failed.
pub async fn chat(
    http: &ProviderHttp,
    t: &Target<'_>,
    req: &Value,
    stream: bool,
    timeout: Duration,
) -> Result<Answer, Result<TranslateError, AttemptError>> {
    if t.provider.provider_type == ProviderType::Mock {
        return Ok(mock::chat(req, t.public_model, stream));
    }
    let rb = chat_request(http, t, req, stream).map_err(Ok)?;
    let resp = send(http, rb, timeout).await.map_err(Err)?;
    if stream {
        let decoder = match t.provider.provider_type {
            ProviderType::Anthropic => {
                Decoder::Anthropic(anthropic::AnthropicToOpenaiStream::new(t.public_model))
            }
            ProviderType::Gemini => {
                Decoder::Gemini(gemini::GeminiToOpenaiStream::new(t.public_model))
            }
            _ => Decoder::OpenAi,
        };
        return Ok(Answer::Stream(Box::new(ChunkStream::http(resp, decoder))));
    }
    let body = read_body(resp, timeout).await.map_err(Err)?;
    let translated = match t.provider.provider_type {
        ProviderType::Anthropic => {
            let v = json_of(&body).map_err(Err)?;
            anthropic::response_from_anthropic(&v, t.public_model)
        }
        ProviderType::Gemini => {
            let v = json_of(&body).map_err(Err)?;
            gemini::response_from_gemini(&v, t.public_model)
        }
        _ => {
            return Whole::parse(body)
                .map(Answer::Whole)
                .map_err(|e| Err(AttemptError::bad_answer(e)))
        }
    };
    translated
        .map(|v| Answer::Whole(Whole::Value(v)))
        .map_err(|e| Err(AttemptError::bad_answer(e)))
}

/// One embeddings attempt; the answer in OpenAI's `list` shape.
pub async fn embeddings(
    http: &ProviderHttp,
    t: &Target<'_>,
    req: &Value,
    input_tokens: u64,
    timeout: Duration,
) -> Result<Value, Result<TranslateError, AttemptError>> {
    let base = t.provider.base_url.as_deref().unwrap_or_default();
    let key = t.api_key.as_deref().unwrap_or_default();
    let mut body = req.clone();
    if let Some(o) = body.as_object_mut() {
        o.insert("model".into(), Value::String(t.upstream_model.to_string()));
    }
    let rb = match t.provider.provider_type {
        ProviderType::Mock => {
            let mut out = mock::embeddings(req, t.public_model);
            if openai::wants_base64_embeddings(req) {
                openai::encode_embeddings_base64(&mut out);
            }
            return Ok(out);
        }
        ProviderType::Anthropic => {
            return Err(Ok(TranslateError::Unsupported {
                param: "embeddings".into(),
                provider: "anthropic",
            }))
        }
        ProviderType::Openai => http
            .post(join(base, "/embeddings"))
            .bearer_auth(key)
            .json(&body),
        ProviderType::AzureOpenai => http
            .post(join(
                base,
                &format!(
                    "/openai/deployments/{}/embeddings",
                    percent_encode(t.upstream_model)
                ),
            ))
            .query(&[(
                "api-version",
                t.provider.api_version.as_deref().unwrap_or_default(),
            )])
            .header("api-key", key)
            .json(&body),
        ProviderType::Gemini => {
            let g = gemini::embeddings_request_to_gemini(req, t.upstream_model).map_err(Ok)?;
            http.post(join(
                base,
                &format!(
                    "/v1beta/models/{}:batchEmbedContents",
                    percent_encode(t.upstream_model)
                ),
            ))
            .header("x-goog-api-key", key)
            .json(&g)
        }
    };
    let mut rb = rb;
    for (k, v) in &t.provider.headers {
        rb = rb.header(k.as_str(), v.as_str());
    }
    let resp = send(http, rb, timeout).await.map_err(Err)?;
    let answer = json_of(&read_body(resp, timeout).await.map_err(Err)?).map_err(Err)?;
    let mut out = match t.provider.provider_type {
        ProviderType::Gemini => {
            let mut out =
                gemini::embeddings_response_from_gemini(&answer, t.public_model, input_tokens)
                    .map_err(|e| Err(AttemptError::bad_answer(e)))?;
            // Gemini answers floats; the OpenAI SDKs ask for base64 by default.
            if openai::wants_base64_embeddings(req) {
                openai::encode_embeddings_base64(&mut out);
            }
            out
        }
        _ => answer,
    };
    if let Some(o) = out.as_object_mut() {
        o.insert("model".into(), Value::String(t.public_model.to_string()));
    }
    Ok(out)
}

/// Sends with a deadline for the response head; a non-2xx answer is an [`AttemptError`]
/// carrying the provider's message and `Retry-After`.
async fn send(
    http: &ProviderHttp,
    rb: ProviderRequest,
    timeout: Duration,
) -> Result<Response<ProxyBody>, AttemptError> {
    let resp = match tokio::time::timeout(timeout, http.send(rb)).await {
        Err(_) => {
            return Err(AttemptError {
                retryable: true,
                status: None,
                retry_after: None,
                message: format!("provider did not answer within {timeout:?}"),
            })
        }
        Ok(Err(e)) => return Err(AttemptError::transport(&e)),
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let retry_after = resp
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    // The error's text: the first 64 KiB is plenty for a message.
    let mut body = resp.into_body();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(b)) = data(&mut body).await {
            raw.extend_from_slice(&b);
            if raw.len() > 64 * 1024 {
                break;
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&raw);
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| text.chars().take(300).collect());
    let code = status.as_u16();
    Err(AttemptError {
        retryable: code == 429 || code == 408 || code >= 500,
        status: Some(code),
        retry_after,
        message: format!("provider answered {code}: {message}"),
    })
}

fn json_of(body: &[u8]) -> Result<Value, AttemptError> {
    serde_json::from_slice(body).map_err(AttemptError::bad_answer)
}

/// The whole answer body, bounded by [`MAX_BODY`] and `timeout` per read.
async fn read_body(resp: Response<ProxyBody>, timeout: Duration) -> Result<Vec<u8>, AttemptError> {
    let declared = resp
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|l| l > MAX_BODY as u64) {
        return Err(AttemptError::bad_answer("answer too large"));
    }
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    loop {
        match tokio::time::timeout(timeout, data(&mut body)).await {
            Err(_) => return Err(AttemptError::bad_answer("body timed out")),
            Ok(Err(e)) => return Err(AttemptError::body(&e)),
            Ok(Ok(None)) => break,
            Ok(Ok(Some(b))) => {
                if buf.len() + b.len() > MAX_BODY {
                    return Err(AttemptError::bad_answer("answer too large"));
                }
                buf.extend_from_slice(&b);
            }
        }
    }
    Ok(buf)
}

/// The body's next data; trailers are skipped, `None` at the end.
async fn data(body: &mut ProxyBody) -> Result<Option<Bytes>, BoxError> {
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame?.into_data() {
            return Ok(Some(d));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::transport::{direct, tests::serve_one};

    /// An OpenAI stream answer, chunked: each event its own chunk, then the last chunk.
    fn sse_answer(events: &[&str]) -> Vec<u8> {
        let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for e in events {
            let ev = format!("data: {e}\n\n");
            out.extend_from_slice(format!("{:x}\r\n{ev}\r\n", ev.len()).as_bytes());
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }

    #[tokio::test]
    async fn a_stream_ended_by_done_and_drained_keeps_its_connection() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let chunk = r#"{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}"#;
        let answer = sse_answer(&[chunk, "[DONE]"]);
        let server = tokio::spawn(async move {
            // One connection only: the second call must come on it.
            let (mut s, _) = l.accept().await.unwrap();
            for _ in 0..2 {
                serve_one(&mut s, &answer).await;
            }
        });
        let http = direct();
        for _ in 0..2 {
            let rb = http
                .post(format!("http://{addr}/v1/chat/completions"))
                .json(&serde_json::json!({"stream": true}));
            let resp = send(&http, rb, Duration::from_secs(5)).await.unwrap();
            let mut stream = ChunkStream::http(resp, Decoder::OpenAi);
            let first = stream.next(Duration::from_secs(5)).await.unwrap().unwrap();
            assert_eq!(first.text(), "hi");
            assert!(stream.next(Duration::from_secs(5)).await.unwrap().is_none());
            std::future::poll_fn(|cx| stream.poll_drain(cx)).await;
        }
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("both calls answered on one connection")
            .unwrap();
    }
}
