//! The body of a records response: the masked source, polled by the client's connection.
//!
//! * **Back-pressure.** The source is read and masked inside `poll_frame`, so the gateway
//!   reads the source only as fast as the connection takes output: at most one chunk of at
//!   most [`COALESCE_BYTES`](super::mask::COALESCE_BYTES) waits beyond what the connection
//!   buffers. A client that takes nothing for the write-stall timeout gets its stream aborted
//!   by the [`StallWatch`].
//! * **Audit before the end.** When the masker has sent the last record, the audit record is
//!   appended and the end of the response (HTTP/1.1's last chunk, HTTP/2's END_STREAM) is sent
//!   only once the record is durable; if it cannot be written, the stream is aborted instead.
//! * **Aborts after the head.** An error after the first records lets the connection flush
//!   what it holds (the head and the records before the error) before the transfer is cut, so
//!   the client sees a 200 whose body breaks off, never an empty reply.

use super::context::Ctx;
use super::limit::Grant;
use super::mask::{MaskedBody, StreamError};
use super::outcome::{Outcomes, StreamEnd};
use super::stall::{StallWatch, Stallable};
use crate::audit::AuditError;
use crate::sync::lock;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use sluice_net::body::Aborted;
use sluice_net::server::Conn;
use sluice_policy::stream::MaskStats;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

/// How a records body is watched for write stalls.
pub struct StallGuard {
    /// The gateway's watch.
    pub watch: Arc<StallWatch>,
    /// How long output may wait for the client.
    pub timeout: Duration,
    /// The connection to close on a stall, when it carries only this response (HTTP/1.x).
    pub conn: Option<Arc<Conn>>,
}

/// The streamed body of an allowed records request.
pub struct RecordsBody {
    cell: Arc<Cell>,
}

struct Cell {
    /// Stall deadline while output waits for the client (see [`Stallable::deadline`]).
    deadline: AtomicU64,
    slot: Mutex<Slot>,
    guard: StallGuard,
}

enum Slot {
    Live(Box<Stream>),
    Ended,
    Stalled,
}

struct Stream {
    masked: MaskedBody,
    pending: Option<Bytes>,
    outcomes: Outcomes,
    ctx: Ctx,
    grant: Grant,
    phase: Phase,
}

type AuditFuture = Pin<Box<dyn Future<Output = Result<u64, AuditError>> + Send>>;

enum Phase {
    /// Masked output goes out.
    Sending,
    /// The last record went out; the end waits for the audit record.
    Auditing(AuditFuture, MaskStats),
    /// The stream failed (and was audited); the error goes out after one flush.
    Failing(Option<StreamError>),
}

impl RecordsBody {
    /// A body sending `first`, then the rest of `masked`, watched by `guard`.
    pub fn new(
        outcomes: Outcomes,
        ctx: Ctx,
        masked: MaskedBody,
        grant: Grant,
        first: Option<Bytes>,
        guard: StallGuard,
    ) -> Self {
        let stream = Stream {
            masked,
            pending: first,
            outcomes,
            ctx,
            grant,
            phase: Phase::Sending,
        };
        // The head (and `first`) wait for the client from now on: an HTTP/2 client whose
        // window is zero from the start never has the body polled at all.
        let deadline = guard.watch.deadline_from_now(guard.timeout);
        let cell = Arc::new(Cell {
            deadline: AtomicU64::new(deadline),
            slot: Mutex::new(Slot::Live(Box::new(stream))),
            guard,
        });
        let weak: std::sync::Weak<dyn Stallable> = Arc::downgrade(&cell) as _;
        cell.guard.watch.watch(weak);
        RecordsBody { cell }
    }
}

impl Body for RecordsBody {
    type Data = Bytes;
    type Error = Aborted;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        let cell = &*self.cell;
        // The connection asks for more: nothing waits for the client now.
        cell.deadline.store(0, Ordering::Release);
        let mut slot = lock(&cell.slot);
        let polled = match &mut *slot {
            Slot::Live(stream) => stream.poll(cx),
            Slot::Ended => return Poll::Ready(None),
            Slot::Stalled => {
                return Poll::Ready(Some(Err(Aborted(
                    StreamError::WriteStalled(cell.guard.timeout).to_string(),
                ))))
            }
        };
        match &polled {
            Poll::Ready(Some(Ok(_))) => {
                let deadline = cell.guard.watch.deadline_from_now(cell.guard.timeout);
                cell.deadline.store(deadline, Ordering::Release);
            }
            Poll::Ready(_) => *slot = Slot::Ended,
            Poll::Pending => {}
        }
        polled
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for RecordsBody {
    fn drop(&mut self) {
        let stream = match std::mem::replace(&mut *lock(&self.cell.slot), Slot::Ended) {
            Slot::Live(stream) => stream,
            _ => return,
        };
        stream.abandon(StreamError::ClientGone);
    }
}

impl Stallable for Cell {
    fn deadline(&self) -> &AtomicU64 {
        &self.deadline
    }

    fn abort_stalled(&self, now: u64) {
        let stream = {
            let mut slot = lock(&self.slot);
            let deadline = self.deadline.load(Ordering::Acquire);
            if deadline == 0 || deadline > now || !matches!(*slot, Slot::Live(_)) {
                return;
            }
            self.deadline.store(0, Ordering::Release);
            match std::mem::replace(&mut *slot, Slot::Stalled) {
                Slot::Live(stream) => stream,
                _ => return,
            }
        };
        stream.abandon(StreamError::WriteStalled(self.guard.timeout));
        if let Some(conn) = &self.guard.conn {
            conn.close();
        }
    }
}

impl Stream {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        loop {
            match &mut self.phase {
                Phase::Sending => {
                    if let Some(chunk) = self.pending.take() {
                        return Poll::Ready(Some(Ok(Frame::data(chunk))));
                    }
                    match ready!(self.masked.poll_output(cx)) {
                        Ok(Some(chunk)) => return Poll::Ready(Some(Ok(Frame::data(chunk)))),
                        Ok(None) => {
                            let sent = self.masked.sent();
                            self.outcomes.count_keys(&self.ctx, self.masked.served_hashes());
                            let stats = sent.stats;
                            self.grant.settle(stats.records_out);
                            let audit = self.outcomes.audit_stream(&self.ctx, StreamEnd::Complete, &sent);
                            self.phase = Phase::Auditing(Box::pin(audit), stats);
                        }
                        Err(e) => {
                            self.record_abort(&e);
                            self.phase = Phase::Failing(Some(e));
                            // One turn for the connection to flush what it holds first.
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                    }
                }
                Phase::Auditing(audit, stats) => {
                    let written = ready!(audit.as_mut().poll(cx));
                    let stats = *stats;
                    return match written {
                        Ok(_) => {
                            self.outcomes.count_stream(&self.ctx, StreamEnd::Complete, &stats);
                            Poll::Ready(None)
                        }
                        Err(e) => {
                            tracing::error!(request_id = %self.ctx.request_id, error = %e, "audit append failed; aborting the response before its end");
                            let e = StreamError::Audit(e.to_string());
                            self.outcomes
                                .count_stream(&self.ctx, StreamEnd::Aborted(e.reason()), &stats);
                            Poll::Ready(Some(Err(Aborted(e.to_string()))))
                        }
                    };
                }
                Phase::Failing(e) => {
                    let e = e.take().map(|e| e.to_string()).unwrap_or_default();
                    return Poll::Ready(Some(Err(Aborted(e))));
                }
            }
        }
    }

    /// Settles the grant, counts and audits (in the background) a stream that failed.
    fn record_abort(&mut self, e: &StreamError) {
        let sent = self.masked.sent();
        self.outcomes.count_keys(&self.ctx, self.masked.served_hashes());
        self.grant.settle(sent.stats.records_out);
        tracing::warn!(request_id = %self.ctx.request_id, error = %e, "stream aborted");
        let end = StreamEnd::Aborted(e.reason());
        self.outcomes.count_stream(&self.ctx, end, &sent.stats);
        let audit = self.outcomes.audit_stream(&self.ctx, end, &sent);
        spawn_audit(audit, &self.ctx.request_id);
    }

    /// Ends a stream its connection no longer polls (gone, or stalled).
    fn abandon(mut self: Box<Self>, e: StreamError) {
        match std::mem::replace(&mut self.phase, Phase::Failing(None)) {
            Phase::Sending => self.record_abort(&e),
            // Every record went out; the record of that is on its way.
            Phase::Auditing(audit, stats) => {
                self.outcomes.count_stream(&self.ctx, StreamEnd::Complete, &stats);
                spawn_audit(audit, &self.ctx.request_id);
            }
            Phase::Failing(_) => {}
        }
    }
}

/// Finishes an audit append off the response's path.
fn spawn_audit(audit: impl Future<Output = Result<u64, AuditError>> + Send + 'static, request_id: &str) {
    let id = request_id.to_owned();
    let task = async move {
        if let Err(e) = audit.await {
            tracing::error!(request_id = %id, error = %e, "audit append failed after an aborted response");
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn(task);
        }
        Err(_) => tracing::error!(%request_id, "no runtime left to audit an aborted response"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditLog, AuditOptions};
    use crate::limits::Limiter;
    use crate::metrics::Metrics;
    use http_body_util::{BodyExt, Full};
    use sluice_connectors::{BodyError, SourceData};
    use sluice_policy::mask::PseudonymKey;
    use sluice_policy::plan::{FieldAction, FieldPlan, PlannedField};
    use sluice_policy::stream::{InputFormat, Masker, MaskerLimits, OutputFormat};

    const BODY: &str = r#"[{"id":"H1","name":"a"},{"id":"H2","name":"b"}]"#;

    fn masked(source: &'static str) -> MaskedBody {
        let plan = Arc::new(FieldPlan {
            record_key: None,
            marks: None,
            fields: vec![PlannedField {
                name: "id".into(),
                action: FieldAction::Emit { scan: false },
            }],
            row_filter: None,
            key: PseudonymKey::derive(b"master", "acme", "hydrants"),
        });
        let masker = Masker::new(
            plan,
            InputFormat::JsonArray,
            OutputFormat::Json,
            MaskerLimits {
                max_records: None,
                max_record_bytes: 4096,
            },
        );
        let body = Full::new(Bytes::from_static(source.as_bytes()))
            .map_err(|never| -> BodyError { match never {} })
            .boxed();
        MaskedBody::new(SourceData::Bytes(body), masker, Duration::from_secs(5), 1 << 20)
    }

    async fn body(audit: &Arc<AuditLog>) -> RecordsBody {
        let mut ctx_req = http::Request::new(());
        *ctx_req.uri_mut() = "/v1/datasets/hydrants/records".parse().unwrap();
        let conn = Conn::new(
            "127.0.0.1:9".parse().unwrap(),
            sluice_net::identity::PeerIdentity::None,
        );
        let ctx = Ctx::new(&ctx_req, &conn);
        let outcomes = Outcomes {
            audit: audit.clone(),
            metrics: Arc::new(Metrics::default()),
            usage: None,
            sources: Arc::default(),
            risk: None,
        };
        let grant = Grant::unlicensed(Arc::new(Limiter::new(None, None)), 100);
        let guard = StallGuard {
            watch: StallWatch::start(),
            timeout: Duration::from_secs(30),
            conn: None,
        };
        RecordsBody::new(outcomes, ctx, masked(BODY), grant, None, guard)
    }

    /// Polls once without waiting.
    fn poll_once(body: &mut RecordsBody) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        let waker = futures_util::task::noop_waker();
        Pin::new(body).poll_frame(&mut Context::from_waker(&waker))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_end_waits_until_the_audit_record_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Arc::new(AuditLog::open(dir.path(), AuditOptions::default()).await.unwrap());
        let mut body = body(&audit).await;
        let mut sent = Vec::new();
        // All records go out without waiting; then the end waits for the writer, which cannot
        // run until this (single-threaded) test yields.
        loop {
            match poll_once(&mut body) {
                Poll::Ready(Some(Ok(frame))) => sent.extend_from_slice(&frame.into_data().unwrap()),
                Poll::Pending => break,
                other => panic!("the end was sent before its audit record was written: {other:?}"),
            }
        }
        assert_eq!(
            std::str::from_utf8(&sent).unwrap(),
            r#"[{"id":"H1"},{"id":"H2"}]"#
        );
        assert_eq!(audit.head().seq, 0, "nothing is durable yet");
        assert!(body.frame().await.is_none(), "then the stream ends cleanly");
        assert_eq!(audit.head().seq, 1, "and its record is in the log");
        let log = std::fs::read_to_string(dir.path().join("audit-000001.jsonl")).unwrap();
        assert!(log.contains(r#""records_out":2"#), "{log}");
    }

    #[tokio::test]
    async fn a_record_that_cannot_be_written_aborts_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Arc::new(AuditLog::open(dir.path(), AuditOptions::default()).await.unwrap());
        let mut body = body(&audit).await;
        audit.close().await.unwrap();
        let mut last = None;
        while let Some(frame) = body.frame().await {
            if let Err(e) = frame {
                last = Some(e);
                break;
            }
        }
        let e = last.expect("the stream must not end cleanly without its record");
        assert!(e.0.contains("audit record not written"), "{e}");
    }
}
