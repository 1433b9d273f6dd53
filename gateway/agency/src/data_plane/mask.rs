//! Phase: mask. The source's body through the streaming masker: only planned fields leave,
//! masked as the plan says, each record checked against the row filter. Output is gathered
//! from source frames that are already waiting into chunks of up to [`COALESCE_BYTES`].

use bytes::Bytes;
use http_body_util::BodyExt;
use sluice_connectors::{BodyError, SourceBody};
use sluice_policy::stream::{MaskError, MaskStats, Masker};
use std::time::Duration;

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
    /// The client stopped reading.
    #[error("the client went away")]
    ClientGone,
    /// The masker refused the input.
    #[error("masker: {0}")]
    Mask(#[from] MaskError),
}

/// A source body feeding a masker.
pub struct MaskedBody {
    body: SourceBody,
    masker: Masker,
    read_timeout: Duration,
    max_upstream_bytes: u64,
    bytes_in: u64,
    finished: bool,
    /// An error met after output was gathered; reported by the next `next_output`.
    deferred: Option<StreamError>,
}

impl MaskedBody {
    /// Masks `body`; a source silent for `read_timeout` or larger than `max_upstream_bytes`
    /// fails the stream.
    pub fn new(body: SourceBody, masker: Masker, read_timeout: Duration, max_upstream_bytes: u64) -> Self {
        Self {
            body,
            masker,
            read_timeout,
            max_upstream_bytes,
            bytes_in: 0,
            finished: false,
            deferred: None,
        }
    }

    /// What was masked and sent so far.
    pub fn stats(&self) -> MaskStats {
        self.masker.stats()
    }

    /// Reads the source until the masker produces output or the document ends. `None` =
    /// ended. Output is coalesced from frames that are already available (never waiting for
    /// more), so a response goes out in few large writes rather than one per source frame.
    pub async fn next_output(&mut self) -> Result<Option<Bytes>, StreamError> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        let mut out = Vec::new();
        while !self.finished {
            if self.masker.is_full() {
                self.finished = true;
                self.masker.finish(&mut out)?;
                break;
            }
            let frame = if out.is_empty() {
                let wait = self.read_timeout;
                tokio::time::timeout(wait, self.body.frame())
                    .await
                    .map_err(|_| StreamError::Stalled(wait))?
            } else if out.len() >= COALESCE_BYTES {
                break;
            } else {
                // Only what is ready now: send what we have rather than wait.
                match futures_util::FutureExt::now_or_never(self.body.frame()) {
                    Some(frame) => frame,
                    None => break,
                }
            };
            if let Err(e) = self.take_frame(frame, &mut out) {
                if out.is_empty() {
                    return Err(e);
                }
                // Complete masked records first; the error ends the stream on the next call.
                self.deferred = Some(e);
                break;
            }
        }
        Ok(Some(Bytes::from(out)).filter(|b| !b.is_empty()))
    }

    /// Feeds one source frame (or the end) to the masker.
    fn take_frame(
        &mut self,
        frame: Option<Result<hyper::body::Frame<Bytes>, BodyError>>,
        out: &mut Vec<u8>,
    ) -> Result<(), StreamError> {
        match frame {
            None => {
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
