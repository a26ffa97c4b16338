//! The body of every answer: bytes in one piece, handed to hyper in slices of at most 16 KiB.
//! A `/metrics` body also carries its connection watchdog's note that it is not sent yet; the
//! note goes when the body is dropped, after its last slice, so on HTTP/2 a peer that never
//! opens its flow-control window keeps the note (and the connection is closed) instead of the
//! whole text sitting in hyper's send buffer.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};

use crate::watchdog::Unsent;

/// Largest slice handed over at once.
const SLICE: usize = 16 * 1024;

#[derive(Debug)]
pub struct Body {
    rest: Bytes,
    _unsent: Option<Unsent>,
}

impl Body {
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Body {
            rest: bytes.into(),
            _unsent: None,
        }
    }

    /// A large answer whose sending the connection's watchdog follows.
    pub fn unsent(bytes: impl Into<Bytes>, note: Unsent) -> Self {
        Body {
            rest: bytes.into(),
            _unsent: Some(note),
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.rest.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.rest.len().min(SLICE);
        Poll::Ready(Some(Ok(Frame::data(self.rest.split_to(n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use hyper::body::Body as _;

    #[tokio::test]
    async fn a_body_is_handed_over_in_slices_and_whole() {
        let text = Bytes::from(vec![7u8; 40 * 1024]);
        let mut body = Body::new(text.clone());
        assert_eq!(body.size_hint().exact(), Some(40 * 1024));
        let mut sizes = Vec::new();
        let mut all = Vec::new();
        while let Some(frame) = body.frame().await {
            let data = frame.expect("frame").into_data().expect("data");
            sizes.push(data.len());
            all.extend_from_slice(&data);
        }
        assert_eq!(sizes, [16 * 1024, 16 * 1024, 8 * 1024]);
        assert_eq!(all, text);
        assert!(Body::new(Bytes::new()).is_end_stream());
    }
}
