//! Response bodies: a fixed body for small responses, a channel-fed body for masked streams.
//!
//! A streamed body ends in one of two ways: cleanly, or with an error frame. On an error hyper
//! aborts the transfer (HTTP/1.1: the connection closes without the final chunk; HTTP/2: the
//! stream is reset), so the client sees a broken transfer, never a truncated body that looks
//! complete.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// The error that aborts a streamed body.
#[derive(Debug, thiserror::Error)]
#[error("response aborted: {0}")]
pub struct Aborted(pub String);

/// Every response body the gateway sends.
pub type RespBody = BoxBody<Bytes, Aborted>;

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> RespBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// Turns a fixed response into a [`RespBody`] response.
pub fn boxed(resp: http::Response<Full<Bytes>>) -> http::Response<RespBody> {
    resp.map(|b| b.map_err(|never| match never {}).boxed())
}

/// A body fed by a channel: `Ok` chunks are sent, an `Err` aborts the transfer.
pub struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, Aborted>>,
}

impl ChannelBody {
    /// A body and the sender that feeds it; `depth` chunks may be in flight.
    pub fn new(depth: usize) -> (mpsc::Sender<Result<Bytes, Aborted>>, Self) {
        let (tx, rx) = mpsc::channel(depth);
        (tx, Self { rx })
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Aborted;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
