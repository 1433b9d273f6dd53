//! Signing and distributing snapshots: the current [`SignedSnapshot`] is cached per revision;
//! a `tokio::sync::watch` carries the revision so long-polls wake as soon as it changes.
//!
//! Replicas sharing one PostgreSQL database learn of each other's changes by a once-a-second
//! revision check ([`Distributor::poll_store`]) rather than LISTEN/NOTIFY.

use super::store::{Store, StoreError};
use ed25519_dalek::SigningKey;
use sluice_policy::snapshot::{key_id, SignedSnapshot, Snapshot, SnapshotError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Mutex};

/// Why a snapshot could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum DistributeError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] SnapshotError),
}

/// Signs snapshots and tells waiters about new revisions.
pub struct Distributor {
    store: Store,
    key: SigningKey,
    revision: watch::Sender<u64>,
    cache: Mutex<Option<(u64, Arc<Vec<u8>>)>>,
}

impl Distributor {
    /// A distributor at the store's current revision.
    pub async fn new(store: Store, key: SigningKey) -> Result<Arc<Self>, StoreError> {
        let rev = store.revision().await?;
        let (tx, _) = watch::channel(rev);
        Ok(Arc::new(Self {
            store,
            key,
            revision: tx,
            cache: Mutex::new(None),
        }))
    }

    /// The key id of the signing key.
    pub fn key_id(&self) -> String {
        key_id(&self.key.verifying_key())
    }

    /// The public key, base64.
    pub fn public_key_b64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(self.key.verifying_key().as_bytes())
    }

    /// The last revision known to this process.
    pub fn current(&self) -> u64 {
        *self.revision.borrow()
    }

    /// Records that the store reached `rev` (after a change committed).
    pub fn advance(&self, rev: u64) {
        self.revision.send_if_modified(|cur| {
            if rev > *cur {
                *cur = rev;
                true
            } else {
                false
            }
        });
    }

    /// Waits until the revision exceeds `after` or `wait` passes; returns whether it did.
    pub async fn wait_after(&self, after: u64, wait: Duration) -> bool {
        let mut rx = self.revision.subscribe();
        tokio::time::timeout(wait, rx.wait_for(|r| *r > after))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The current signed snapshot as JSON bytes, with its revision.
    pub async fn signed(&self) -> Result<(u64, Arc<Vec<u8>>), DistributeError> {
        let mut cache = self.cache.lock().await;
        let rev = self.store.revision().await?;
        self.advance(rev);
        if let Some((r, bytes)) = cache.as_ref() {
            if *r == rev {
                return Ok((rev, bytes.clone()));
            }
        }
        let state = self.store.snapshot_state().await?;
        let snap = Snapshot {
            revision: state.revision,
            issued_at: time::OffsetDateTime::now_utc().unix_timestamp(),
            licences: state.licences,
            closed_datasets: state.closed_datasets,
            all_conditional_closed: state.all_conditional_closed,
            restricted_licensees: state.restricted_licensees,
            revoked_serials: state.revoked_serials,
        };
        let signed = SignedSnapshot::sign(&snap, &self.key)?;
        let bytes = Arc::new(serde_json::to_vec(&signed).unwrap_or_default());
        *cache = Some((snap.revision, bytes.clone()));
        Ok((snap.revision, bytes))
    }

    /// Checks the store's revision every second until `shutdown` turns true, so changes made
    /// by another replica on the same database wake this one's long-polls.
    pub async fn poll_store(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => return,
            }
            match self.store.revision().await {
                Ok(rev) => self.advance(rev),
                Err(e) => tracing::warn!(error = %e, "registry revision check failed"),
            }
        }
    }
}
