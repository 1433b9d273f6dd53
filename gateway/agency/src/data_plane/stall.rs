//! Write stalls. A streamed response hands its client at most one chunk beyond what the
//! connection asked for (the masker runs inside the body's poll), so a client that stops
//! reading stops the source. If it takes nothing for the write-stall timeout, the watch aborts
//! the stream: the source is dropped, the record is audited as `write-stalled`, and an
//! HTTP/1.1 connection is closed (an HTTP/2 stream is reset when the connection next polls it).

use crate::sync::lock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// How often the watch looks for stalled streams.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// A stream the watch can abort.
pub trait Stallable: Send + Sync {
    /// The stall deadline: when output waits for the client, in ms since the watch's epoch,
    /// or 0 when the stream is not waiting for its client.
    fn deadline(&self) -> &AtomicU64;
    /// Aborts the stream as stalled if its deadline (read again under the stream's own lock)
    /// is still set and not after `now`.
    fn abort_stalled(&self, now: u64);
}

/// The gateway's watch over streaming responses.
pub struct StallWatch {
    epoch: Instant,
    streams: Mutex<Vec<Weak<dyn Stallable>>>,
}

impl StallWatch {
    /// A watch, swept by a task that stops when the watch is dropped.
    pub fn start() -> Arc<StallWatch> {
        let watch = Arc::new(StallWatch {
            epoch: Instant::now(),
            streams: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&watch);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(watch) = weak.upgrade() else { return };
                watch.sweep();
            }
        });
        watch
    }

    /// Watches a stream until it is dropped.
    pub fn watch(&self, stream: Weak<dyn Stallable>) {
        lock(&self.streams).push(stream);
    }

    /// The deadline for output handed out now, with `timeout`.
    pub fn deadline_from_now(&self, timeout: Duration) -> u64 {
        let ms = self.epoch.elapsed().saturating_add(timeout).as_millis();
        u64::try_from(ms).unwrap_or(u64::MAX).max(1)
    }

    /// Aborts every stream past its deadline and forgets the dropped ones.
    fn sweep(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut stalled = Vec::new();
        lock(&self.streams).retain(|weak| match weak.upgrade() {
            None => false,
            Some(stream) => {
                let deadline = stream.deadline().load(Ordering::Acquire);
                if deadline != 0 && deadline <= now {
                    stalled.push(stream);
                }
                true
            }
        });
        // Outside the lock: aborting takes the stream's own lock and writes its record.
        for stream in stalled {
            stream.abort_stalled(now);
        }
    }
}
