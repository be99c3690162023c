//! A streamed answer on its way to the client: canonical chunks from the provider are
//! encoded in the client's format (OpenAI `data:` lines and `[DONE]`, or Anthropic's named
//! events) by the client's response body itself, which reads the provider's stream when
//! the client connection asks for more — no task and no channel between them. When the
//! stream ends — or the client leaves, or a `hard` quota's budget is reached — usage is
//! settled with the quotas.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderValue};
use http::Response;
use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Frame};
use serde_json::{json, Value};
use tokio::time::Sleep;

use super::chunk::Chunk;
use super::error::Flavor;
use super::providers::{AttemptError, ChunkStream};
use super::translate::anthropic::OpenaiToAnthropicStream;
use super::translate::sse::{write_sse_json, SSE_DONE};
use super::translate::Usage;
use crate::proxy::{BoxError, ProxyBody};

/// What the relay settles when the stream ends.
pub struct Finish {
    /// Called once with the usage (reported, or counted from what was sent).
    pub settle: Box<dyn FnOnce(Usage, bool) + Send>,
    pub estimated_input: u64,
    /// Output tokens a `hard` quota allows this call.
    pub output_budget: Option<u64>,
    pub idle: Duration,
    pub started: Instant,
    pub on_first_chunk: Box<dyn FnOnce(f64) + Send>,
    /// Checks the answer text as it streams (deny-list); a hit ends the stream.
    pub guard: Option<std::sync::Arc<super::guardrails::Guard>>,
    /// Given every chunk when the stream ended normally (to cache the answer).
    pub on_complete: Option<Box<dyn FnOnce(Vec<Value>) + Send>>,
}

enum Encoder {
    OpenAi {
        model: String,
        /// `model` as JSON text.
        model_json: String,
        usage_wanted: bool,
    },
    Anthropic(Box<OpenaiToAnthropicStream>),
}

impl Encoder {
    fn encode(&mut self, chunk: Chunk, out: &mut Vec<u8>) {
        match self {
            Encoder::OpenAi {
                model,
                model_json,
                usage_wanted,
            } => {
                if chunk.is_usage_only() && !*usage_wanted {
                    return;
                }
                chunk.write_sse(model, model_json, out);
            }
            Encoder::Anthropic(s) => {
                for (name, data) in s.on_chunk(&chunk.into_value()) {
                    write_sse_json(out, Some(&name), &data);
                }
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            Encoder::OpenAi { .. } => out.extend_from_slice(SSE_DONE),
            Encoder::Anthropic(s) => {
                for (name, data) in s.finish() {
                    write_sse_json(out, Some(&name), &data);
                }
            }
        }
    }

    fn error(&self, message: &str, out: &mut Vec<u8>) {
        match self {
            Encoder::OpenAi { .. } => write_sse_json(
                out,
                None,
                &json!({"error": {"message": message, "type": "api_error", "code": "provider_stream_failed"}}),
            ),
            Encoder::Anthropic(_) => write_sse_json(
                out,
                Some("error"),
                &json!({"type": "error", "error": {"type": "api_error", "message": message}}),
            ),
        }
    }
}

/// Returns the response that relays `stream` (whose `first` chunk was already read) to
/// the client.
pub fn respond(
    flavor: Flavor,
    public_model: &str,
    usage_wanted: bool,
    first: Chunk,
    stream: Box<ChunkStream>,
    headers: HeaderMap,
    finish: Finish,
) -> Response<ProxyBody> {
    let encoder = match flavor {
        Flavor::OpenAi => Encoder::OpenAi {
            model: public_model.to_string(),
            model_json: Value::String(public_model.to_string()).to_string(),
            usage_wanted,
        },
        Flavor::Anthropic => Encoder::Anthropic(Box::new(
            OpenaiToAnthropicStream::new(public_model).with_input_tokens(finish.estimated_input),
        )),
    };
    let mut r = Response::new(Relay::new(first, stream, encoder, finish).boxed_unsync());
    r.headers_mut().extend(headers);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// A frame stops growing past this size.
const FRAME_MAX: usize = 64 * 1024;
/// Answer text kept before what is new when the deny-list looks at it: its terms are at
/// most 200 bytes, so a term split across chunks is still seen whole.
const GUARD_OVERLAP: usize = 256;

/// Why the answer ended.
enum End {
    /// The provider's stream ended on its own.
    Provider,
    /// The provider's stream broke, or went idle.
    Failed(String),
    /// The deny-list matched the answer.
    Blocked(&'static str),
    /// A `hard` quota's output budget is used up.
    Budget,
}

/// The client's response body. Each poll reads what the provider has sent, and every
/// event that read completes leaves as one frame: a provider read carrying many events
/// costs the client connection one write, and an event that arrives alone goes at once.
/// Dropped before the end (the client left), it settles what was sent.
struct Relay {
    stream: Option<Box<ChunkStream>>,
    /// The chunk read before the answer began (fallback ends there).
    first: Option<Chunk>,
    enc: Encoder,
    out: Vec<u8>,
    /// The last frame has been handed out.
    ended: bool,
    idle: Duration,
    /// Armed while waiting on the provider; reset only when it fires early.
    idle_timer: Option<Pin<Box<Sleep>>>,
    meter: Meter,
    started: Instant,
    settle: Option<Box<dyn FnOnce(Usage, bool) + Send>>,
    on_first_chunk: Option<Box<dyn FnOnce(f64) + Send>>,
    on_complete: Option<Box<dyn FnOnce(Vec<Value>) + Send>>,
    /// Every chunk, while the answer is to be cached.
    kept: Option<Vec<Value>>,
}

/// What the answer has used so far.
struct Meter {
    reported: Option<Usage>,
    estimated_input: u64,
    /// Characters of answer text sent (tokens are estimated from them).
    chars: u64,
    output_budget: Option<u64>,
    guard: Option<std::sync::Arc<super::guardrails::Guard>>,
    /// The end of the answer text, for the deny-list.
    tail: String,
}

impl Meter {
    /// Counts one chunk; `Some` when it ends the answer.
    fn take(&mut self, chunk: &Chunk) -> Option<End> {
        if let Some(u) = chunk.usage() {
            self.reported = Some(u);
        }
        let text = chunk.text();
        self.chars += text.chars().count() as u64;
        if let Some(g) = &self.guard {
            self.tail.push_str(&text);
            let blocked = g.check_answer(&self.tail).blocked;
            let from = self
                .tail
                .floor_char_boundary(self.tail.len().saturating_sub(GUARD_OVERLAP));
            self.tail.drain(..from);
            if let Some(category) = blocked {
                return Some(End::Blocked(category));
            }
        }
        // The provider was asked for at most the budget (`max_tokens`); this cut is the
        // backstop for one that ignores it, with room for the estimate's error.
        let over = self
            .output_budget
            .is_some_and(|b| self.output_tokens() > b.saturating_mul(2).saturating_add(32));
        over.then_some(End::Budget)
    }

    /// Estimated like [`estimate_tokens`](super::translate::estimate_tokens).
    fn output_tokens(&self) -> u64 {
        self.chars.div_ceil(4)
    }

    /// The provider's report, or what was sent counted.
    fn usage(&self) -> (Usage, bool) {
        match self.reported {
            Some(u) => (u, true),
            None => (
                Usage {
                    input: self.estimated_input,
                    output: self.output_tokens(),
                    cached_input: 0,
                },
                false,
            ),
        }
    }
}

impl Relay {
    fn new(first: Chunk, stream: Box<ChunkStream>, enc: Encoder, f: Finish) -> Relay {
        Relay {
            stream: Some(stream),
            first: Some(first),
            enc,
            out: Vec::new(),
            ended: false,
            idle: f.idle,
            idle_timer: None,
            meter: Meter {
                reported: None,
                estimated_input: f.estimated_input,
                chars: 0,
                output_budget: f.output_budget,
                guard: f.guard,
                tail: String::new(),
            },
            started: f.started,
            settle: Some(f.settle),
            on_first_chunk: Some(f.on_first_chunk),
            kept: f.on_complete.as_ref().map(|_| Vec::new()),
            on_complete: f.on_complete,
        }
    }

    /// Encodes what the provider has ready into `out`; `Pending` only when nothing is.
    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<Option<End>> {
        while self.out.len() < FRAME_MAX {
            let chunk = match self.first.take() {
                Some(c) => c,
                None => {
                    let Some(stream) = self.stream.as_mut() else {
                        return Poll::Ready(Some(End::Provider));
                    };
                    match stream.poll_next(cx) {
                        Poll::Ready(Ok(Some(c))) => c,
                        Poll::Ready(Ok(None)) => return Poll::Ready(Some(End::Provider)),
                        Poll::Ready(Err(e)) => return Poll::Ready(Some(End::Failed(e.message))),
                        Poll::Pending if !self.out.is_empty() => break,
                        Poll::Pending => {
                            let last = stream.last_read();
                            return match self.poll_idle(cx, last) {
                                Poll::Ready(()) => Poll::Ready(Some(End::Failed(
                                    AttemptError::idle(self.idle).message,
                                ))),
                                Poll::Pending => Poll::Pending,
                            };
                        }
                    }
                }
            };
            let end = self.meter.take(&chunk);
            if let Some(End::Blocked(_)) = end {
                return Poll::Ready(end); // the chunk that matched is not sent
            }
            if let Some(k) = self.kept.as_mut() {
                k.push(chunk.clone().into_value());
            }
            self.enc.encode(chunk, &mut self.out);
            if end.is_some() {
                return Poll::Ready(end);
            }
        }
        Poll::Ready(None)
    }

    /// Ready when the provider has sent nothing for `idle` since `last`. The timer is
    /// armed once and moved only when it fires before then, not on every read.
    fn poll_idle(&mut self, cx: &mut Context<'_>, last: Instant) -> Poll<()> {
        let deadline = tokio::time::Instant::from_std(last + self.idle);
        let timer = self
            .idle_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if tokio::time::Instant::now() >= deadline {
                return Poll::Ready(());
            }
            timer.as_mut().reset(deadline);
        }
    }

    /// Writes the answer's last events, settles, and lets the provider's connection go
    /// back to its pool when the stream ended on its own (anything else closes it).
    fn end(&mut self, end: End, cx: &mut Context<'_>) {
        self.ended = true;
        let whole = match &end {
            End::Provider => {
                self.enc.finish(&mut self.out);
                true
            }
            End::Budget => {
                // Ended here as `length`, with an orderly end.
                let cut = json!({"object": "chat.completion.chunk", "choices": [
                    {"index": 0, "delta": {}, "finish_reason": "length"}]});
                self.enc.encode(Chunk::Value(cut), &mut self.out);
                self.enc.finish(&mut self.out);
                false
            }
            // No orderly end after an error event.
            End::Failed(message) => {
                tracing::warn!(error = %message, "provider stream failed mid-way");
                self.enc.error(message, &mut self.out);
                false
            }
            End::Blocked(category) => {
                tracing::info!(category, "streamed answer blocked by a guardrail");
                let message = format!("the answer was blocked by a guardrail ({category})");
                self.enc.error(&message, &mut self.out);
                false
            }
        };
        // Only a whole answer is worth caching.
        if let (true, Some(store), Some(chunks)) =
            (whole, self.on_complete.take(), self.kept.take())
        {
            store(chunks);
        }
        self.settle();
        if let (true, Some(mut stream)) = (whole, self.stream.take()) {
            if stream.poll_drain(cx).is_pending() {
                stream.drain_later();
            }
        }
        self.stream = None;
        self.idle_timer = None;
    }

    fn settle(&mut self) {
        if let Some(settle) = self.settle.take() {
            let (usage, complete) = self.meter.usage();
            settle(usage, complete);
        }
    }
}

impl Body for Relay {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if !this.ended {
            match this.fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(end)) => this.end(end, cx),
                Poll::Ready(None) => {}
            }
        }
        if this.out.is_empty() {
            return Poll::Ready(None);
        }
        if let Some(f) = this.on_first_chunk.take() {
            f(this.started.elapsed().as_secs_f64());
        }
        let data = Bytes::from(std::mem::take(&mut this.out));
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.out.is_empty()
    }
}

impl Drop for Relay {
    /// The client left before the end: bill what was sent.
    fn drop(&mut self) {
        self.settle();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::sync::mpsc;

    use super::*;

    /// A provider body fed by the test, one read per `send`.
    struct Feed(mpsc::UnboundedReceiver<&'static str>);

    impl Body for Feed {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            self.0
                .poll_recv(cx)
                .map(|o| o.map(|s| Ok(Frame::data(Bytes::from_static(s.as_bytes())))))
        }
    }

    type Settled = Arc<Mutex<Vec<(Usage, bool)>>>;

    fn chunk(text: &str) -> Value {
        json!({"object": "chat.completion.chunk", "model": "up",
            "choices": [{"index": 0, "delta": {"content": text}}]})
    }

    fn event(text: &str) -> &'static str {
        format!("data: {}\n\n", chunk(text)).leak()
    }

    /// A relay of an OpenAI stream from a fed body, to an OpenAI client.
    fn relay(
        budget: Option<u64>,
        idle: Duration,
    ) -> (mpsc::UnboundedSender<&'static str>, Relay, Settled) {
        let (tx, rx) = mpsc::unbounded_channel();
        let stream = ChunkStream::openai_body(Feed(rx).boxed_unsync());
        let settled: Settled = Arc::default();
        let s = settled.clone();
        let finish = Finish {
            settle: Box::new(move |u, complete| s.lock().unwrap().push((u, complete))),
            estimated_input: 7,
            output_budget: budget,
            idle,
            started: Instant::now(),
            on_first_chunk: Box::new(|_| {}),
            guard: None,
            on_complete: None,
        };
        let enc = Encoder::OpenAi {
            model: "public".into(),
            model_json: "\"public\"".into(),
            usage_wanted: false,
        };
        (
            tx,
            Relay::new(chunk("a").into(), Box::new(stream), enc, finish),
            settled,
        )
    }

    fn poll(relay: &mut Relay) -> Poll<Option<String>> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        Pin::new(relay).poll_frame(&mut cx).map(|f| {
            f.map(|f| String::from_utf8(f.unwrap().into_data().unwrap().to_vec()).unwrap())
        })
    }

    fn events(frame: &str) -> Vec<Value> {
        frame
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).unwrap_or(json!(d)))
            .collect()
    }

    #[tokio::test]
    async fn events_of_one_provider_read_leave_as_one_frame_and_usage_is_settled_at_the_end() {
        let (tx, mut relay, settled) = relay(None, Duration::from_secs(60));
        // The first chunk was read before the answer began: it goes at once, alone.
        let Poll::Ready(Some(f)) = poll(&mut relay) else {
            panic!("first chunk")
        };
        assert_eq!(events(&f).len(), 1);
        assert_eq!(events(&f)[0]["model"], "public", "the public model name");
        assert!(poll(&mut relay).is_pending(), "nothing read yet");
        tx.send(format!("{}{}", event("b"), event("c")).leak())
            .unwrap();
        let Poll::Ready(Some(f)) = poll(&mut relay) else {
            panic!("two events")
        };
        let got = events(&f);
        assert_eq!(got.len(), 2, "one frame for one read: {f}");
        assert_eq!(got[1]["choices"][0]["delta"]["content"], "c");
        // The usage chunk the gateway asked for is not the client's (it did not ask).
        tx.send(r#"data: {"object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}

data: [DONE]

"#).unwrap();
        let Poll::Ready(Some(f)) = poll(&mut relay) else {
            panic!("the end")
        };
        assert_eq!(f, "data: [DONE]\n\n", "usage removed, then the end");
        assert!(relay.is_end_stream());
        assert!(matches!(poll(&mut relay), Poll::Ready(None)));
        let s = settled.lock().unwrap().clone();
        assert_eq!(s.len(), 1, "settled once");
        assert_eq!((s[0].0.input, s[0].0.output, s[0].1), (3, 2, true));
        drop(relay);
        assert_eq!(settled.lock().unwrap().len(), 1, "not again when dropped");
    }

    #[tokio::test]
    async fn a_client_that_leaves_is_billed_for_what_was_sent() {
        let (tx, mut relay, settled) = relay(None, Duration::from_secs(60));
        assert!(matches!(poll(&mut relay), Poll::Ready(Some(_))));
        tx.send(event("twelve chars")).unwrap();
        assert!(matches!(poll(&mut relay), Poll::Ready(Some(_))));
        assert!(settled.lock().unwrap().is_empty(), "not before the end");
        drop(relay);
        let s = settled.lock().unwrap().clone();
        // "a" + "twelve chars": 13 characters, 4 tokens estimated; no report.
        assert_eq!((s[0].0.input, s[0].0.output, s[0].1), (7, 4, false));
        drop(tx);
    }

    #[tokio::test]
    async fn an_answer_past_its_budget_ends_as_length() {
        // Budget 0 allows 32 estimated tokens (the backstop's margin): 129 characters.
        let (tx, mut relay, settled) = relay(Some(0), Duration::from_secs(60));
        assert!(matches!(poll(&mut relay), Poll::Ready(Some(_))));
        let long: &'static str = "x".repeat(200).leak();
        tx.send(format!("{}{}", event(long), event("never")).leak())
            .unwrap();
        let Poll::Ready(Some(f)) = poll(&mut relay) else {
            panic!("cut")
        };
        let got = events(&f);
        assert_eq!(got.len(), 3, "the chunk, the cut, [DONE]: {f}");
        assert_eq!(got[1]["choices"][0]["finish_reason"], "length");
        assert_eq!(got[2], "[DONE]");
        assert!(matches!(poll(&mut relay), Poll::Ready(None)));
        let s = settled.lock().unwrap().clone();
        assert_eq!((s[0].0.output, s[0].1), (51, false), "201 characters sent");
    }

    #[tokio::test]
    async fn a_provider_silent_for_the_idle_time_ends_the_answer_with_an_error_event() {
        let (_tx, mut relay, settled) = relay(None, Duration::from_millis(50));
        assert!(matches!(poll(&mut relay), Poll::Ready(Some(_))));
        let f = std::future::poll_fn(|cx| Pin::new(&mut relay).poll_frame(cx));
        let frame = tokio::time::timeout(Duration::from_secs(5), f)
            .await
            .expect("the idle timer wakes the body")
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap();
        let got = events(std::str::from_utf8(&frame).unwrap());
        assert_eq!(got[0]["error"]["code"], "provider_stream_failed", "{got:?}");
        assert_eq!(got.len(), 1, "no [DONE] after an error");
        assert!(matches!(poll(&mut relay), Poll::Ready(None)));
        assert_eq!(settled.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_frame_stops_growing_at_the_cap() {
        let (tx, mut relay, _) = relay(None, Duration::from_secs(60));
        assert!(matches!(poll(&mut relay), Poll::Ready(Some(_))));
        let big: &'static str = "y".repeat(10 * 1024).leak();
        let ev = event(big);
        let mut read = String::new();
        for _ in 0..10 {
            read.push_str(ev);
        }
        tx.send(read.leak()).unwrap();
        let mut sizes = Vec::new();
        while let Poll::Ready(Some(f)) = poll(&mut relay) {
            sizes.push(events(&f).len());
        }
        assert_eq!(sizes.iter().sum::<usize>(), 10, "{sizes:?}");
        assert!(
            sizes.len() >= 2 && sizes.iter().all(|&n| n <= 7),
            "{sizes:?}"
        );
    }
}
