//! A streamed answer on its way to the client: canonical chunks from the provider are
//! encoded in the client's format (OpenAI `data:` lines and `[DONE]`, or Anthropic's named
//! events) and sent through a bounded channel; when the stream ends — or the client
//! leaves, or a `hard` quota's budget is reached — usage is settled with the quotas.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderValue};
use http::Response;
use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Frame};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::error::Flavor;
use super::providers::ChunkStream;
use super::translate::anthropic::OpenaiToAnthropicStream;
use super::translate::sse::sse_event;
use super::translate::{estimate_tokens, openai, openai_usage, text_of_openai_chunk, Usage};
use crate::proxy::{BoxError, ProxyBody};

/// What the pump settles when the stream ends.
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
    OpenAi { model: String, usage_wanted: bool },
    Anthropic(Box<OpenaiToAnthropicStream>),
}

impl Encoder {
    fn encode(&mut self, mut chunk: Value) -> Vec<Bytes> {
        match self {
            Encoder::OpenAi {
                model,
                usage_wanted,
            } => {
                if openai::is_usage_only_chunk(&chunk) && !*usage_wanted {
                    return Vec::new();
                }
                if let Some(o) = chunk.as_object_mut() {
                    o.insert("model".into(), Value::String(model.clone()));
                }
                vec![sse_event(None, &chunk.to_string())]
            }
            Encoder::Anthropic(s) => s
                .on_chunk(&chunk)
                .into_iter()
                .map(|(name, data)| sse_event(Some(&name), &data.to_string()))
                .collect(),
        }
    }

    fn finish(&mut self) -> Vec<Bytes> {
        match self {
            Encoder::OpenAi { .. } => vec![sse_event(None, "[DONE]")],
            Encoder::Anthropic(s) => s
                .finish()
                .into_iter()
                .map(|(name, data)| sse_event(Some(&name), &data.to_string()))
                .collect(),
        }
    }

    fn error(&self, message: &str) -> Bytes {
        match self {
            Encoder::OpenAi { .. } => sse_event(
                None,
                &json!({"error": {"message": message, "type": "api_error", "code": "provider_stream_failed"}})
                    .to_string(),
            ),
            Encoder::Anthropic(_) => sse_event(
                Some("error"),
                &json!({"type": "error", "error": {"type": "api_error", "message": message}})
                    .to_string(),
            ),
        }
    }
}

/// Starts pumping `stream` (whose `first` chunk was already read) to the client and
/// returns the response carrying it.
pub fn respond(
    flavor: Flavor,
    public_model: &str,
    usage_wanted: bool,
    first: Value,
    stream: Box<ChunkStream>,
    headers: HeaderMap,
    finish: Finish,
) -> Response<ProxyBody> {
    let encoder = match flavor {
        Flavor::OpenAi => Encoder::OpenAi {
            model: public_model.to_string(),
            usage_wanted,
        },
        Flavor::Anthropic => Encoder::Anthropic(Box::new(
            OpenaiToAnthropicStream::new(public_model).with_input_tokens(finish.estimated_input),
        )),
    };
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(32);
    tokio::spawn(pump(first, stream, tx, encoder, finish));
    let mut r = Response::new(Coalesced::new(rx).boxed_unsync());
    r.headers_mut().extend(headers);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

type Item = Result<Frame<Bytes>, BoxError>;

/// Coalesced frames stop growing past this size.
const COALESCE_MAX: usize = 64 * 1024;

/// The client's end of the pump's channel. Every event queued since the client
/// connection last wrote leaves as one body frame, and a frame waits one turn of the
/// scheduler for more events before it goes: a provider read carrying many events then
/// costs the client connection one write instead of one per event (those writes were most
/// of a streamed call's CPU, in the kernel). One turn is microseconds; a provider that
/// sends its events apart still has each one forwarded at once.
struct Coalesced {
    rx: mpsc::Receiver<Item>,
    /// Data gathered for the next frame.
    pending: Vec<u8>,
    /// A non-data item found behind data: delivered after it.
    held: Option<Item>,
    /// `pending` already waited its one turn.
    yielded: bool,
}

impl Coalesced {
    fn new(rx: mpsc::Receiver<Item>) -> Coalesced {
        Coalesced {
            rx,
            pending: Vec::new(),
            held: None,
            yielded: false,
        }
    }
}

impl Body for Coalesced {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        let this = self.get_mut();
        if this.pending.is_empty() {
            if let Some(item) = this.held.take() {
                return Poll::Ready(Some(item));
            }
        }
        while this.held.is_none() && this.pending.len() < COALESCE_MAX {
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(f))) => match f.into_data() {
                    Ok(d) => this.pending.extend_from_slice(&d),
                    Err(f) => this.held = Some(Ok(f)),
                },
                Poll::Ready(Some(Err(e))) => this.held = Some(Err(e)),
                Poll::Ready(None) => break,
                Poll::Pending if this.pending.is_empty() => return Poll::Pending,
                Poll::Pending if !this.yielded => {
                    this.yielded = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Pending => break,
            }
        }
        if this.pending.is_empty() {
            // The channel ended, or only a non-data item was there.
            return Poll::Ready(this.held.take());
        }
        this.yielded = false;
        let data = Bytes::from(std::mem::take(&mut this.pending));
        Poll::Ready(Some(Ok(Frame::data(data))))
    }
}

async fn pump(
    first: Value,
    mut stream: Box<ChunkStream>,
    tx: mpsc::Sender<Result<Frame<Bytes>, BoxError>>,
    mut enc: Encoder,
    finish: Finish,
) {
    let mut reported: Option<Usage> = None;
    let mut text = String::new();
    let mut next = Some(first);
    let mut client_gone = false;
    let mut first_sent = Some(finish.on_first_chunk);
    let mut kept: Option<Vec<Value>> = finish.on_complete.as_ref().map(|_| Vec::new());
    let mut cut_off = false;
    let mut checked = 0usize;
    let mut ended = false;
    'chunks: loop {
        let chunk = match next.take() {
            Some(c) => c,
            None => match stream.next(finish.idle).await {
                Ok(Some(c)) => c,
                Ok(None) => {
                    ended = true;
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e.message, "provider stream failed mid-way");
                    let _ = tx.send(Ok(Frame::data(enc.error(&e.message)))).await;
                    client_gone = true; // no orderly end after an error event
                    break;
                }
            },
        };
        if let Some(u) = openai_usage(&chunk) {
            reported = Some(u);
        }
        text.push_str(&text_of_openai_chunk(&chunk));
        if let Some(k) = kept.as_mut() {
            k.push(chunk.clone());
        }
        if let Some(g) = &finish.guard {
            // Terms are at most 200 bytes: look at what is new plus that much before it.
            let from = text.floor_char_boundary(checked.saturating_sub(256));
            let v = g.check_answer(&text[from..]);
            checked = text.len();
            if let Some(category) = v.blocked {
                tracing::info!(category, "streamed answer blocked by a guardrail");
                let msg = format!("the answer was blocked by a guardrail ({category})");
                let _ = tx.send(Ok(Frame::data(enc.error(&msg)))).await;
                cut_off = true;
                client_gone = true; // no orderly end after an error event
                break;
            }
        }
        // The provider was asked for at most the budget (`max_tokens`); this cut is the
        // backstop for one that ignores it, with room for the estimate's error.
        let over_budget = finish
            .output_budget
            .is_some_and(|b| estimate_tokens(&text) > b.saturating_mul(2).saturating_add(32));
        for frame in enc.encode(chunk) {
            if tx.send(Ok(Frame::data(frame))).await.is_err() {
                client_gone = true;
                break 'chunks;
            }
            if let Some(f) = first_sent.take() {
                f(finish.started.elapsed().as_secs_f64());
            }
        }
        if over_budget {
            // A hard quota's reservation is used up: end the answer here, as `length`.
            let cut = json!({"object": "chat.completion.chunk", "choices": [
                {"index": 0, "delta": {}, "finish_reason": "length"}]});
            for frame in enc.encode(cut) {
                let _ = tx.send(Ok(Frame::data(frame))).await;
            }
            cut_off = true;
            break;
        }
    }
    if !client_gone {
        for frame in enc.finish() {
            if tx.send(Ok(Frame::data(frame))).await.is_err() {
                break;
            }
        }
    }
    // Only a whole, uncut answer is worth caching.
    if let (Some(store), Some(chunks), false, false) =
        (finish.on_complete, kept, client_gone, cut_off)
    {
        store(chunks);
    }
    let complete = reported.is_some();
    let usage = reported.unwrap_or(Usage {
        input: finish.estimated_input,
        output: estimate_tokens(&text),
        cached_input: 0,
    });
    (finish.settle)(usage, complete);
    // The client's body ends here; a provider stream that ended on its own is read to
    // its end so its connection is kept (anything else is closed when dropped).
    drop(tx);
    if ended {
        (*stream).drain().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(s: &'static str) -> Item {
        Ok(Frame::data(Bytes::from_static(s.as_bytes())))
    }

    #[tokio::test]
    async fn queued_events_leave_as_one_frame_and_an_error_keeps_its_place() {
        let (tx, rx) = mpsc::channel::<Item>(32);
        let mut body = Coalesced::new(rx);
        for e in ["data: 1\n\n", "data: 2\n\n", "data: 3\n\n"] {
            tx.send(data(e)).await.unwrap();
        }
        tx.send(Err("provider gone".into())).await.unwrap();
        tx.send(data("data: 4\n\n")).await.unwrap();
        let f = body.frame().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), "data: 1\n\ndata: 2\n\ndata: 3\n\n");
        let e = body.frame().await.unwrap().unwrap_err();
        assert_eq!(e.to_string(), "provider gone");
        drop(tx);
        let f = body.frame().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), "data: 4\n\n");
        assert!(body.frame().await.is_none(), "ends when the pump does");
    }

    #[tokio::test]
    async fn a_frame_stops_growing_at_the_cap() {
        let (tx, rx) = mpsc::channel::<Item>(32);
        let mut body = Coalesced::new(rx);
        let big = Bytes::from(vec![b'x'; 40 * 1024]);
        for _ in 0..3 {
            tx.send(Ok(Frame::data(big.clone()))).await.unwrap();
        }
        drop(tx);
        let mut sizes = Vec::new();
        while let Some(f) = body.frame().await {
            sizes.push(f.unwrap().into_data().unwrap().len());
        }
        assert_eq!(sizes, [80 * 1024, 40 * 1024]);
    }

    #[tokio::test]
    async fn a_lone_event_waits_one_turn_for_company_then_goes() {
        let (tx, rx) = mpsc::channel::<Item>(32);
        let mut body = Coalesced::new(rx);
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        tx.send(data("data: 1\n\n")).await.unwrap();
        assert!(
            Pin::new(&mut body).poll_frame(&mut cx).is_pending(),
            "one turn for more events"
        );
        tx.send(data("data: 2\n\n")).await.unwrap();
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(f))) => {
                assert_eq!(f.into_data().unwrap(), "data: 1\n\ndata: 2\n\n")
            }
            other => panic!("expected both events, got {other:?}"),
        }
        tx.send(data("data: 3\n\n")).await.unwrap();
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_pending());
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(f))) => assert_eq!(f.into_data().unwrap(), "data: 3\n\n"),
            other => panic!("a waited event goes even alone, got {other:?}"),
        }
    }
}
