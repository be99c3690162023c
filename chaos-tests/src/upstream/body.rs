//! Response bodies: a fixed one, and [`Zeros`] that streams `n` bytes in 64 KiB chunks
//! taken from one static buffer (nothing the size of `n` is ever allocated).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as HttpBody, Bytes, Frame, SizeHint};

/// The response body type of every endpoint.
pub type Body = BoxBody<Bytes, Infallible>;

pub const CHUNK: usize = 64 * 1024;

static ZEROS: [u8; CHUNK] = [b'0'; CHUNK];

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// `remaining` bytes of ASCII `'0'`, one chunk per frame; its exact size hint lets hyper
/// send a `Content-Length` on HTTP/1.1.
#[derive(Debug)]
pub struct Zeros {
    remaining: u64,
}

impl Zeros {
    pub fn new(n: u64) -> Zeros {
        Zeros { remaining: n }
    }

    pub fn boxed(self) -> Body {
        BodyExt::boxed(self)
    }
}

impl HttpBody for Zeros {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(CHUNK as u64) as usize;
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&ZEROS[..n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
