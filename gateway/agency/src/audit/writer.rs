//! The writer: a tokio task that group-commits appended records to the newest segment.
//!
//! Appenders send their record over a bounded channel (backpressure) and wait for an
//! acknowledgement. The task takes everything pending (up to a batch bound), chains and
//! serialises it, writes it with one `write` and one `sync_data` per segment touched, and only
//! then acknowledges each record with its seq. File I/O runs on the blocking pool.

use super::record::format_time;
use super::segment::{self, Segment};
use super::{line, AuditError, AuditRecord, Head, GENESIS_PREV};
use crate::sync::lock;
use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Options of the audit log.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Start a new segment when the current one would grow beyond this many bytes
    /// (default 64 MiB). A single larger record gets a segment of its own.
    pub segment_bytes: u64,
    /// Appends that may wait for the writer before `append` itself waits (default 4096).
    pub queue: usize,
    /// Most records written by one write and fsync (default 1024).
    pub max_batch: usize,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            segment_bytes: 64 * 1024 * 1024,
            queue: 4096,
            max_batch: 1024,
        }
    }
}

enum Msg {
    Append(Box<AuditRecord>, oneshot::Sender<Result<u64, AuditError>>),
    Close(oneshot::Sender<()>),
}

/// What the writer task shares with the handle.
#[derive(Default)]
struct Shared {
    head: Mutex<Option<Head>>,
    failure: Mutex<Option<String>>,
}

impl Shared {
    fn update(&self, w: &SegmentWriter) {
        *lock(&self.head) = Some(Head {
            seq: w.seq,
            hash: w.prev.clone(),
        });
        *lock(&self.failure) = w.poisoned.clone().or_else(|| w.last_error.clone());
    }
}

/// The durable, hash-chained audit log of one gateway.
///
/// One folder has one writer at a time: opening takes an exclusive lock on `<dir>/.lock`
/// (released when the writer stops), so a second gateway pointed at the same folder fails with
/// [`AuditError::InUse`] instead of forking the chain.
pub struct AuditLog {
    dir: PathBuf,
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("dir", &self.dir)
            .field("head", &self.head())
            .finish()
    }
}

impl AuditLog {
    /// Opens (creating if needed) the log in `dir`, recovers the chain's end (truncating an
    /// incomplete final line left by a crash) and starts the writer task.
    ///
    /// Fails with [`AuditError::Corrupt`] when the last complete record does not check out:
    /// the writer will not extend a chain it cannot trust.
    pub async fn open(dir: &Path, options: AuditOptions) -> Result<AuditLog, AuditError> {
        let owned = dir.to_owned();
        let opts = options.clone();
        let writer = tokio::task::spawn_blocking(move || SegmentWriter::open(&owned, &opts))
            .await
            .map_err(|e| AuditError::WriteFailed(format!("opening the audit log: {e}")))??;
        let shared = Arc::new(Shared::default());
        shared.update(&writer);
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let task = tokio::spawn(run(rx, writer, shared.clone(), options.max_batch.max(1)));
        Ok(AuditLog {
            dir: dir.to_owned(),
            tx,
            shared,
            task: Mutex::new(Some(task)),
        })
    }

    /// Appends a record; resolves to its seq once it is written and fsynced.
    ///
    /// The writer sets `seq`, `prev` and `hash`, and stamps `time` if it is empty (normalising
    /// a given one to UTC with milliseconds). An error means the record is not in the log (the
    /// caller should fail closed). The future does not borrow the log; dropping it after it
    /// has started does not withdraw the record.
    pub fn append(
        &self,
        record: AuditRecord,
    ) -> impl Future<Output = Result<u64, AuditError>> + Send + 'static {
        let tx = self.tx.clone();
        async move {
            let (ack, done) = oneshot::channel();
            tx.send(Msg::Append(Box::new(record), ack))
                .await
                .map_err(|_| AuditError::Closed)?;
            done.await.map_err(|_| AuditError::Closed)?
        }
    }

    /// The last durable record's seq and hash (seq 0 and [`GENESIS_PREV`] for an empty log):
    /// publish it somewhere off-host so that [`verify_dir_with_anchor`](super::verify_dir_with_anchor)
    /// can later detect records removed from the end.
    pub fn head(&self) -> Head {
        lock(&self.shared.head).clone().unwrap_or_else(|| Head {
            seq: 0,
            hash: GENESIS_PREV.to_owned(),
        })
    }

    /// `Ok` while the log accepts writes; the last write error otherwise (cleared by the next
    /// successful write unless the writer is poisoned).
    pub fn health(&self) -> Result<(), AuditError> {
        if self.tx.is_closed() {
            return Err(AuditError::Closed);
        }
        match lock(&self.shared.failure).clone() {
            Some(e) => Err(AuditError::WriteFailed(e)),
            None => Ok(()),
        }
    }

    /// The log's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes everything appended before it, stops the writer and closes the files. Later
    /// appends fail with [`AuditError::Closed`]. Returns the writer's failure, if it had one.
    pub async fn close(&self) -> Result<(), AuditError> {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Close(ack)).await.is_ok() {
            let _ = done.await;
        }
        let task = lock(&self.task).take();
        if let Some(task) = task {
            task.await
                .map_err(|e| AuditError::WriteFailed(format!("audit writer task failed: {e}")))?;
        }
        match lock(&self.shared.failure).clone() {
            Some(e) => Err(AuditError::WriteFailed(e)),
            None => Ok(()),
        }
    }
}

/// The writer task.
async fn run(mut rx: mpsc::Receiver<Msg>, writer: SegmentWriter, shared: Arc<Shared>, max_batch: usize) {
    let mut writer = Some(writer);
    let mut msgs = Vec::with_capacity(max_batch);
    loop {
        msgs.clear();
        if rx.recv_many(&mut msgs, max_batch).await == 0 {
            return; // every handle is gone
        }
        let mut records = Vec::with_capacity(msgs.len());
        let mut acks = Vec::with_capacity(msgs.len());
        let mut close = None;
        for msg in msgs.drain(..) {
            match msg {
                // Appends sent after a close are dropped: their appenders see `Closed`.
                Msg::Append(r, ack) if close.is_none() => {
                    records.push(*r);
                    acks.push(ack);
                }
                Msg::Append(..) => {}
                Msg::Close(ack) => close = close.or(Some(ack)),
            }
        }
        if !records.is_empty() {
            let mut results = Vec::new().into_iter();
            if let Some(mut w) = writer.take() {
                match tokio::task::spawn_blocking(move || {
                    let r = w.write_batch(records);
                    (w, r)
                })
                .await
                {
                    Ok((w, r)) => {
                        shared.update(&w);
                        writer = Some(w);
                        results = r.into_iter();
                    }
                    Err(e) => *lock(&shared.failure) = Some(format!("audit writer crashed: {e}")),
                }
            }
            for ack in acks {
                let r = results.next().unwrap_or_else(|| {
                    Err(AuditError::Poisoned(
                        lock(&shared.failure).clone().unwrap_or_default(),
                    ))
                });
                let _ = ack.send(r);
            }
        }
        if let Some(ack) = close {
            drop(writer.take());
            let _ = ack.send(());
            return;
        }
    }
}

/// The synchronous core: appends batches to the newest segment, rolling as needed.
struct SegmentWriter {
    dir: PathBuf,
    segment: Segment,
    file: File,
    /// Durable length of the current segment.
    size: u64,
    /// Seq of the last durable record.
    seq: u64,
    /// Hash of the last durable record.
    prev: String,
    segment_bytes: u64,
    last_error: Option<String>,
    /// Set when a failed write could not be undone: no further writes.
    poisoned: Option<String>,
    /// Held for the writer's lifetime: the exclusive lock on `<dir>/.lock`.
    _lock: File,
}

/// Name of the lock file in the audit folder.
pub const LOCK_FILE: &str = ".lock";

/// Takes the folder's exclusive writer lock without waiting.
fn lock_dir(dir: &Path) -> Result<File, AuditError> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(AuditError::io("opening", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(AuditError::InUse {
            dir: dir.to_owned(),
            lock: path,
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(AuditError::io("locking", path)(e)),
    }
}

impl SegmentWriter {
    fn open(dir: &Path, options: &AuditOptions) -> Result<SegmentWriter, AuditError> {
        if !dir.is_dir() {
            std::fs::create_dir_all(dir).map_err(AuditError::io("creating", dir))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                segment::sync_dir(parent)?;
            }
        }
        let lock = lock_dir(dir)?;
        let r = segment::recover(dir)?;
        tracing::info!(dir = %dir.display(), segment = %r.segment.name, seq = r.seq, "audit log opened");
        Ok(SegmentWriter {
            dir: dir.to_owned(),
            segment: r.segment,
            file: r.file,
            size: r.size,
            seq: r.seq,
            prev: r.prev,
            segment_bytes: options.segment_bytes.max(1),
            last_error: None,
            poisoned: None,
            _lock: lock,
        })
    }

    /// Chains, writes and syncs `records`; one result (seq or error) per record, in order.
    fn write_batch(&mut self, records: Vec<AuditRecord>) -> Vec<Result<u64, AuditError>> {
        let now = format_time(OffsetDateTime::now_utc());
        let mut results: Vec<Result<u64, AuditError>> = Vec::with_capacity(records.len());
        let mut buf = Vec::new();
        let mut pending = Vec::new(); // indices of records in `buf`
        let (mut seq, mut prev) = (self.seq, self.prev.clone());
        let mut failed: Option<String> = None;
        for mut rec in records {
            if let Some(p) = &self.poisoned {
                results.push(Err(AuditError::Poisoned(p.clone())));
                continue;
            }
            if let Some(msg) = &failed {
                results.push(Err(AuditError::WriteFailed(msg.clone())));
                continue;
            }
            if let Err(e) = rec.validate() {
                results.push(Err(AuditError::InvalidRecord(e)));
                continue;
            }
            rec.seq = seq + 1;
            rec.prev = std::mem::take(&mut prev);
            rec.time = match rec.timestamp() {
                Some(t) => format_time(t), // normalised to UTC with milliseconds
                None => now.clone(),       // empty (validated above)
            };
            let encoded = line::encode(&rec);
            prev = std::mem::take(&mut rec.prev);
            let (bytes, hash) = match encoded {
                Ok(x) => x,
                Err(e) => {
                    results.push(Err(AuditError::InvalidRecord(e.to_string())));
                    continue;
                }
            };
            let used = self.size + buf.len() as u64;
            if used > 0 && used + bytes.len() as u64 > self.segment_bytes {
                let flushed = self.flush(&mut buf, seq, &prev);
                if let Err(msg) = &flushed {
                    fail(&mut results, &pending, msg);
                }
                pending.clear();
                if let Err(msg) = flushed.and_then(|()| self.roll()) {
                    results.push(Err(AuditError::WriteFailed(msg.clone())));
                    failed = Some(msg);
                    continue;
                }
            }
            buf.extend_from_slice(&bytes);
            seq += 1;
            prev = hash;
            pending.push(results.len());
            results.push(Ok(seq));
        }
        if let Err(msg) = self.flush(&mut buf, seq, &prev) {
            fail(&mut results, &pending, &msg);
        }
        results
    }

    /// Writes and syncs `buf`; on success the chain's durable end becomes `seq`/`prev`. On
    /// failure truncates the segment back to its durable length (poisoning the writer if even
    /// that fails).
    fn flush(&mut self, buf: &mut Vec<u8>, seq: u64, prev: &str) -> Result<(), String> {
        if buf.is_empty() {
            return Ok(());
        }
        let written = self.file.write_all(buf).and_then(|()| self.file.sync_data());
        let len = buf.len() as u64;
        buf.clear();
        match written {
            Ok(()) => {
                self.size += len;
                self.seq = seq;
                self.prev = prev.to_owned();
                self.last_error = None;
                Ok(())
            }
            Err(e) => {
                let msg = format!("writing {}: {e}", self.segment.name);
                tracing::error!(error = %msg, "audit write failed");
                if let Err(t) = self.file.set_len(self.size).and_then(|()| self.file.sync_data()) {
                    self.poisoned = Some(format!("{msg}; then restoring its length failed: {t}"));
                }
                self.last_error = Some(msg.clone());
                Err(msg)
            }
        }
    }

    /// Starts the next segment.
    fn roll(&mut self) -> Result<(), String> {
        let (segment, file) = segment::create(&self.dir, self.segment.index + 1).map_err(|e| {
            let msg = format!("starting the next segment: {e}");
            self.last_error = Some(msg.clone());
            msg
        })?;
        tracing::info!(segment = %segment.name, seq = self.seq + 1, "audit segment rolled");
        self.segment = segment;
        self.file = file;
        self.size = 0;
        Ok(())
    }
}

fn fail(results: &mut [Result<u64, AuditError>], pending: &[usize], msg: &str) {
    for i in pending {
        if let Some(r) = results.get_mut(*i) {
            *r = Err(AuditError::WriteFailed(msg.to_owned()));
        }
    }
}
