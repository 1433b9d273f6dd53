//! Response bodies: a fixed body for small responses; streamed bodies (the agency's masked
//! records) are boxed into the same [`RespBody`].
//!
//! A streamed body ends in one of two ways: cleanly, or with an error frame. On an error hyper
//! aborts the transfer (HTTP/1.1: the connection closes without the final chunk; HTTP/2: the
//! stream is reset), so the client sees a broken transfer, never a truncated body that looks
//! complete.

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};

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
