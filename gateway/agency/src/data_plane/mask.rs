//! Phase: mask. The source's body (bytes, or a database's typed rows) through the streaming masker: only planned fields leave,
//! masked as the plan says, each record checked against the row filter. Output is gathered
//! from source frames that are already waiting into chunks of up to [`COALESCE_BYTES`].
//!
//! The masker runs inside the response body's poll: the source is read only when the client's
//! connection asks for more, so a client that does not read stops the source instead of making
//! the gateway buffer.

use super::outcome::Sent;
use bytes::Bytes;
use hyper::body::Body;
use sluice_connectors::{BodyError, PageBodies, RowStream, SourceBody, SourceData};
use sluice_policy::stream::RowBatch;
use sluice_policy::stream::{MaskError, MaskStats, Masker};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Masked output gathered into one chunk when source frames are already waiting.
pub const COALESCE_BYTES: usize = 64 * 1024;

/// Why a stream stopped early.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The source body failed.
    #[error("upstream body: {0}")]
    Upstream(#[from] BodyError),
    /// The source sent nothing for too long.
    #[error("upstream body stalled for {0:?}")]
    Stalled(Duration),
    /// The source sent more than the configured cap.
    #[error("upstream body larger than {0} bytes")]
    TooLarge(u64),
    /// The client went away before the end.
    #[error("the client went away")]
    ClientGone,
    /// The client did not take the output waiting for it within the write-stall timeout.
    #[error("the client read nothing for {0:?}")]
    WriteStalled(Duration),
    /// The masker refused the input.
    #[error("masker: {0}")]
    Mask(#[from] MaskError),
    /// The stream's audit record could not be written, so its end is not sent.
    #[error("audit record not written: {0}")]
    Audit(String),
}

impl StreamError {
    /// The stable reason recorded in the audit log.
    pub fn reason(&self) -> &'static str {
        match self {
            StreamError::WriteStalled(_) => "write-stalled",
            _ => "stream-aborted",
        }
    }
}

/// The source's later pages, when it sends several ([`SourceData::Pages`]).
struct Pages {
    rest: PageBodies,
    per_page: u64,
    /// Records read before the current page.
    before: u64,
    /// The current page ended: the next is being asked for.
    asking: bool,
}

/// What the masker reads now: a body of bytes (one page of it, when the source sends
/// several) or typed rows.
enum Input {
    Bytes(SourceBody),
    Rows(RowStream),
}

/// A source body feeding a masker.
pub struct MaskedBody {
    body: Input,
    pages: Option<Pages>,
    masker: Masker,
    read_timeout: Duration,
    /// The read-timeout timer, made at the first wait.
    idle: Option<Pin<Box<Sleep>>>,
    /// Whether `idle` runs for the current wait.
    idle_armed: bool,
    max_upstream_bytes: u64,
    bytes_in: u64,
    finished: bool,
    /// An error met after output was gathered; reported by the next poll.
    deferred: Option<StreamError>,
    /// Size of the last output chunk: the next one's buffer starts that large, so gathering
    /// does not grow (and copy) it step by step.
    last_out: usize,
}

impl MaskedBody {
    /// Masks `body` (typed rows need a [`Masker::typed`] of their columns); a source silent
    /// for `read_timeout` or larger than `max_upstream_bytes` fails the stream.
    pub fn new(body: SourceData, masker: Masker, read_timeout: Duration, max_upstream_bytes: u64) -> Self {
        let (body, pages) = match body {
            SourceData::Bytes(b) => (Input::Bytes(b), None),
            SourceData::Rows(r) => (Input::Rows(r), None),
            SourceData::Pages(p) => (
                Input::Bytes(p.first),
                Some(Pages {
                    rest: p.rest,
                    per_page: p.per_page,
                    before: 0,
                    asking: false,
                }),
            ),
        };
        Self {
            body,
            pages,
            masker,
            read_timeout,
            idle: None,
            idle_armed: false,
            max_upstream_bytes,
            bytes_in: 0,
            finished: false,
            deferred: None,
            last_out: 0,
        }
    }

    /// Whether the document ended (the page is complete).
    pub fn is_done(&self) -> bool {
        self.finished && self.deferred.is_none()
    }

    /// What was masked and sent so far.
    pub fn stats(&self) -> MaskStats {
        self.masker.stats()
    }

    /// The hashes of the record keys written so far (for the risk watch's `keys` rules).
    pub fn served_hashes(&self) -> &[u128] {
        self.masker.served_hashes()
    }

    /// What was sent so far, with the digest of the record keys written, for the audit.
    pub fn sent(&self) -> Sent {
        Sent {
            stats: self.masker.stats(),
            served: self.masker.served(),
            epsilon: None,
        }
    }

    /// Reads the source until `max` bytes of output are gathered or the document ends,
    /// waiting for the source as needed (bounded by the read timeout); `None` when the
    /// document ended without output.
    pub async fn read_ahead(&mut self, max: usize) -> Result<Option<Bytes>, StreamError> {
        // The first chunk as it is; copied into one buffer only when a second one follows.
        let mut first: Option<Bytes> = None;
        let mut joined: Option<bytes::BytesMut> = None;
        loop {
            match self.next_output().await {
                Ok(Some(chunk)) => {
                    let len = match (&first, &mut joined) {
                        (None, _) => {
                            let len = chunk.len();
                            first = Some(chunk);
                            len
                        }
                        (Some(f), None) => {
                            let mut j = bytes::BytesMut::with_capacity(max.max(f.len() + chunk.len()));
                            j.extend_from_slice(f);
                            j.extend_from_slice(&chunk);
                            let len = j.len();
                            joined = Some(j);
                            len
                        }
                        (Some(_), Some(j)) => {
                            j.extend_from_slice(&chunk);
                            j.len()
                        }
                    };
                    if len >= max || self.finished {
                        break;
                    }
                }
                Ok(None) => break,
                // What was gathered goes first; the error ends the stream after it.
                Err(e) if first.is_some() => {
                    self.deferred = Some(e);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(joined.map(bytes::BytesMut::freeze).or(first))
    }

    /// Reads the source until the masker produces output or the document ends (`None`).
    pub async fn next_output(&mut self) -> Result<Option<Bytes>, StreamError> {
        std::future::poll_fn(|cx| self.poll_output(cx)).await
    }

    /// Polls for the next masked output. Output is coalesced from frames that are already
    /// available (never waiting for more), so a response goes out in few large writes rather
    /// than one per source frame; with nothing to send, the source's silence is bounded by the
    /// read timeout.
    pub fn poll_output(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, StreamError>> {
        if let Some(e) = self.deferred.take() {
            return Poll::Ready(Err(e));
        }
        // A record may end past the coalescing bound: room for a few more kilobytes.
        let mut out = Vec::with_capacity(self.last_out.clamp(4096, COALESCE_BYTES + 8192));
        while !self.finished && out.len() < COALESCE_BYTES {
            if self.masker.is_full() {
                self.finished = true;
                if let Err(e) = self.masker.finish(&mut out) {
                    return Poll::Ready(self.fail(e.into(), out));
                }
                break;
            }
            if let Some(p) = self.pages.as_mut().filter(|p| p.asking) {
                let next = match p.rest.as_mut().poll_next(cx) {
                    Poll::Ready(next) => next,
                    Poll::Pending if out.is_empty() => return self.poll_idle(cx),
                    Poll::Pending => break,
                };
                self.idle_armed = false;
                p.asking = false;
                match next {
                    Some(Ok(body)) => self.body = Input::Bytes(body),
                    Some(Err(e)) => {
                        return Poll::Ready(self.fail(StreamError::Upstream(BodyError(e.to_string())), out))
                    }
                    None => {
                        self.finished = true;
                        if let Err(e) = self.masker.finish(&mut out) {
                            return Poll::Ready(self.fail(e.into(), out));
                        }
                        break;
                    }
                }
            }
            let taken = match &mut self.body {
                Input::Bytes(body) => match Pin::new(body).poll_frame(cx) {
                    Poll::Ready(frame) => Poll::Ready(self.take_frame(frame, &mut out)),
                    Poll::Pending => Poll::Pending,
                },
                Input::Rows(rows) => match rows.batches.as_mut().poll_next(cx) {
                    Poll::Ready(batch) => Poll::Ready(self.take_batch(batch, &mut out)),
                    Poll::Pending => Poll::Pending,
                },
            };
            match taken {
                Poll::Ready(Ok(())) => self.idle_armed = false,
                Poll::Ready(Err(e)) => return Poll::Ready(self.fail(e, out)),
                Poll::Pending if out.is_empty() => return self.poll_idle(cx),
                // Only what is ready now: send what we have rather than wait.
                Poll::Pending => break,
            }
        }
        self.last_out = out.len();
        Poll::Ready(Ok(Some(Bytes::from(out)).filter(|b| !b.is_empty())))
    }

    /// Sends the complete records gathered before an error; the error ends the stream on the
    /// next poll.
    fn fail(&mut self, e: StreamError, out: Vec<u8>) -> Result<Option<Bytes>, StreamError> {
        if out.is_empty() {
            return Err(e);
        }
        self.deferred = Some(e);
        Ok(Some(Bytes::from(out)))
    }

    /// Waits for the source, at most the read timeout from the start of this wait.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, StreamError>> {
        let deadline = Instant::now() + self.read_timeout;
        let idle = self
            .idle
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.idle_armed {
            idle.as_mut().reset(deadline);
            self.idle_armed = true;
        }
        match idle.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(StreamError::Stalled(self.read_timeout))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Feeds one batch of typed rows (or the end) to the masker.
    fn take_batch(
        &mut self,
        batch: Option<Result<RowBatch, BodyError>>,
        out: &mut Vec<u8>,
    ) -> Result<(), StreamError> {
        match batch {
            None => {
                self.finished = true;
                self.masker.finish(out)?;
            }
            Some(Err(e)) => return Err(StreamError::Upstream(e)),
            Some(Ok(batch)) => {
                self.bytes_in += batch.bytes() as u64;
                if self.bytes_in > self.max_upstream_bytes {
                    return Err(StreamError::TooLarge(self.max_upstream_bytes));
                }
                self.masker.push_rows(&batch, out)?;
            }
        }
        Ok(())
    }

    /// Feeds one source frame (or the end) to the masker.
    fn take_frame(
        &mut self,
        frame: Option<Result<hyper::body::Frame<Bytes>, BodyError>>,
        out: &mut Vec<u8>,
    ) -> Result<(), StreamError> {
        match frame {
            None => {
                // The source's page ended: a full one is followed by the next, unless the
                // gateway's page is full already.
                if let Some(p) = self.pages.as_mut() {
                    let read = self.masker.stats().records_in;
                    if !self.masker.is_full() && read - p.before >= p.per_page {
                        self.masker.next_document(out)?;
                        p.before = read;
                        p.asking = true;
                        return Ok(());
                    }
                }
                self.finished = true;
                self.masker.finish(out)?;
            }
            Some(Err(e)) => return Err(StreamError::Upstream(e)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    self.bytes_in += data.len() as u64;
                    if self.bytes_in > self.max_upstream_bytes {
                        return Err(StreamError::TooLarge(self.max_upstream_bytes));
                    }
                    self.masker.feed(&data, out)?;
                }
            }
        }
        Ok(())
    }
}
