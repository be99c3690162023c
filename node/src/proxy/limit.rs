//! A request-body size limit that lets an HTTP/1 client finish sending before the 413.
//!
//! `http_body_util::Limited` fails at the first byte over the limit; the gateway then
//! answers 413 and hyper closes the connection with the rest of the body unread, so the
//! kernel resets it and a client still writing sees "broken pipe" instead of the answer.
//! Like nginx's lingering close, this reads and discards up to [`DRAIN_MAX`] more bytes
//! (the client's upload continues to nowhere) and only then reports the overflow.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use hyper::body::{Body, Bytes, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::proxy::BoxError;

/// Bytes read and thrown away after the limit before giving up on the client.
pub const DRAIN_MAX: u64 = 1024 * 1024;

/// The body went over the route's limit.
#[derive(Debug, thiserror::Error)]
#[error("request body over the limit")]
pub struct BodyTooLarge;

pin_project! {
    pub struct DrainingLimit<B> {
        #[pin]
        inner: B,
        left: u64,
        // Bytes discarded since the limit was passed (0: not passed).
        drained: u64,
    }
}

impl<B> DrainingLimit<B> {
    pub fn new(inner: B, max: u64) -> DrainingLimit<B> {
        DrainingLimit {
            inner,
            left: max,
            drained: 0,
        }
    }
}

impl<B> Body for DrainingLimit<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                None if *this.drained > 0 => return Poll::Ready(Some(Err(BodyTooLarge.into()))),
                None => return Poll::Ready(None),
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                Some(Ok(frame)) => {
                    let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                    if *this.drained == 0 && len <= *this.left {
                        *this.left -= len;
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    *this.drained = this.drained.saturating_add(len.max(1));
                    if *this.drained > DRAIN_MAX {
                        return Poll::Ready(Some(Err(BodyTooLarge.into())));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream() && self.drained == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    fn body(chunks: Vec<usize>) -> impl Body<Data = Bytes, Error = BoxError> {
        let frames = chunks
            .into_iter()
            .map(|n| Ok::<_, BoxError>(Frame::data(Bytes::from(vec![b'x'; n]))));
        StreamBody::new(futures::stream::iter(frames))
    }

    #[tokio::test]
    async fn under_the_limit_passes_over_it_drains_then_fails() {
        let ok = DrainingLimit::new(body(vec![400, 600]), 1_000)
            .collect()
            .await
            .expect("at the limit");
        assert_eq!(ok.to_bytes().len(), 1_000);
        // Over the limit: every chunk is read (the client finishes sending), then an error.
        let mut b = std::pin::pin!(DrainingLimit::new(body(vec![600, 600, 600]), 1_000));
        let first = b
            .frame()
            .await
            .expect("a frame")
            .expect("the first chunk passes");
        assert_eq!(first.data_ref().map(|d| d.len()), Some(600));
        let e = b
            .frame()
            .await
            .expect("an end")
            .expect_err("over the limit");
        assert!(e.is::<BodyTooLarge>());
        // A client that keeps sending past the drain budget is cut off anyway.
        let huge = vec![64 * 1024; (DRAIN_MAX / (64 * 1024)) as usize + 2];
        let e = DrainingLimit::new(body(huge), 10)
            .collect()
            .await
            .expect_err("too big");
        assert!(e.is::<BodyTooLarge>());
    }
}
