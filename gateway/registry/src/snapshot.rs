//! Signing and distributing snapshots: the current [`SignedSnapshot`] is cached per revision;
//! a `tokio::sync::watch` carries the revision so long-polls wake as soon as it changes.
//!
//! Replicas sharing one PostgreSQL database learn of each other's changes at once through
//! LISTEN/NOTIFY ([`Distributor::listen_store`]); a once-a-second revision check
//! ([`Distributor::poll_store`]) is the safety net for lost notifications and for SQLite.
//!
//! It also records which revision each gateway was last answered
//! ([`Distributor::record_contact`]), the registry's view of the federation's health
//! (`GET /admin/gateways/health`).

use super::store::{GatewayContact, Store, StoreError, CHANGE_CHANNEL};
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use sluice_net::identity::Peer;
use sluice_policy::snapshot::{key_id, Delta, SignedDelta, SignedSnapshot, Snapshot, SnapshotError};
use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};
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
    cache: Mutex<Option<(u64, Bytes)>>,
    /// Signed deltas by (base, revision), the most recent last.
    deltas: Mutex<Vec<(u64, u64, Bytes)>>,
    /// The contact this process last recorded per gateway ([`Self::record_contact`]).
    contacts: std::sync::Mutex<HashMap<String, Written>>,
}

/// What this process last recorded of a gateway's contact.
struct Written {
    revision: u64,
    serial: String,
    at: Instant,
}

/// How long this process leaves a gateway's recorded contact as it is while the gateway is
/// answered the same revision under the same certificate: its `last_seen` is at most this old
/// while it polls (per process: replicas each write at this pace).
pub const CONTACT_WRITE_EVERY: Duration = Duration::from_secs(15);

/// Signed deltas kept (one per base revision gateways hold; nearly all hold the same).
const DELTAS_KEPT: usize = 16;

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
            deltas: Mutex::new(Vec::new()),
            contacts: std::sync::Mutex::new(HashMap::new()),
        }))
    }

    /// A 32-byte secret for `purpose`, derived from the signing key (SHA-256 of the purpose
    /// and the seed): the same at every replica sharing the key, never the key itself.
    pub(crate) fn derived_secret(&self, purpose: &str) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"sluice-registry derived secret\0");
        h.update(purpose.as_bytes());
        h.update(b"\0");
        h.update(self.key.to_bytes());
        h.finalize().into()
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
    ///
    /// When the cached snapshot is at the revision this process last learned of (its own
    /// changes, notifications and the poll all advance it), it is served without asking the
    /// database, so a change wakes every waiting gateway with one store read, not one each.
    pub async fn signed(&self) -> Result<(u64, Bytes), DistributeError> {
        let mut cache = self.cache.lock().await;
        if let Some((r, bytes)) = cache.as_ref() {
            if *r == self.current() {
                return Ok((*r, bytes.clone()));
            }
        }
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
            licences: state.licences.into_iter().map(std::sync::Arc::new).collect(),
            closed_datasets: state.closed_datasets,
            all_conditional_closed: state.all_conditional_closed,
            restricted_licensees: state.restricted_licensees,
            revoked_serials: state.revoked_serials,
            record_marks: state.record_marks,
            risk_rules: state.risk_rules,
        };
        let signed = SignedSnapshot::sign(&snap, &self.key)?;
        let bytes = Bytes::from(serde_json::to_vec(&signed).unwrap_or_default());
        *cache = Some((snap.revision, bytes.clone()));
        Ok((snap.revision, bytes))
    }

    /// A signed [`Delta`] from `base` to the current revision as JSON bytes, with that
    /// revision; `None` when the whole snapshot must be sent instead (see
    /// [`Store::delta_state`]). Made once per base and revision: every gateway holding `base`
    /// gets the same bytes.
    pub async fn delta(&self, base: u64) -> Result<Option<(u64, Bytes)>, DistributeError> {
        let mut deltas = self.deltas.lock().await;
        let current = self.current();
        if let Some((_, r, bytes)) = deltas.iter().find(|(b, r, _)| *b == base && *r == current) {
            return Ok(Some((*r, bytes.clone())));
        }
        let Some(state) = self.store.delta_state(base).await? else {
            return Ok(None);
        };
        self.advance(state.revision);
        let delta = Delta {
            base,
            revision: state.revision,
            issued_at: time::OffsetDateTime::now_utc().unix_timestamp(),
            licences: state.licences,
            closed_datasets: state.closed_datasets,
            all_conditional_closed: state.all_conditional_closed,
            restricted_licensees: state.restricted_licensees,
            revoked_serials: state.revoked_serials,
            record_marks: state.record_marks,
            risk_rules: state.risk_rules,
        };
        let signed = SignedDelta::sign(&delta, &self.key)?;
        let bytes = Bytes::from(serde_json::to_vec(&signed).unwrap_or_default());
        deltas.retain(|(b, _, _)| *b != base);
        if deltas.len() >= DELTAS_KEPT {
            deltas.remove(0);
        }
        deltas.push((base, delta.revision, bytes.clone()));
        Ok(Some((delta.revision, bytes)))
    }

    /// Records that gateway `peer` was answered on `GET /v1/snapshot` at `revision` (a 304
    /// included). Written to the store when the revision or the certificate differs from what
    /// this process last recorded for it, or that was [`CONTACT_WRITE_EVERY`] ago or more;
    /// otherwise nothing is written. A failed write is logged (the answer still goes out) and
    /// tried again on the next answer.
    pub async fn record_contact(&self, peer: &Peer, revision: u64) {
        let now = Instant::now();
        {
            let mut written = self.contacts.lock().unwrap_or_else(PoisonError::into_inner);
            if written.get(&peer.id).is_some_and(|w| {
                w.revision == revision
                    && w.serial == peer.serial
                    && now.duration_since(w.at) < CONTACT_WRITE_EVERY
            }) {
                return;
            }
            let w = Written {
                revision,
                serial: peer.serial.clone(),
                at: now,
            };
            written.insert(peer.id.clone(), w);
        }
        let contact = GatewayContact {
            gateway: peer.id.clone(),
            revision,
            seen_at: super::store::now(),
            cert_serial: peer.serial.clone(),
            cert_not_after: peer.not_after,
        };
        if let Err(e) = self.store.record_gateway_contact(&contact).await {
            tracing::warn!(gateway = %peer.id, error = %e, "recording a gateway's contact failed");
            let mut written = self.contacts.lock().unwrap_or_else(PoisonError::into_inner);
            if written.get(&peer.id).is_some_and(|w| w.at == now) {
                written.remove(&peer.id);
            }
        }
    }

    /// Checks the store's revision every second until `shutdown` turns true, so changes made
    /// by another replica on the same database wake this one's long-polls.
    pub async fn poll_store(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => return,
            }
            self.refresh().await;
        }
    }

    /// Re-reads the store's revision (after a notification or a timer).
    async fn refresh(&self) {
        match self.store.revision().await {
            Ok(rev) => self.advance(rev),
            Err(e) => tracing::warn!(error = %e, "registry revision check failed"),
        }
    }

    /// On PostgreSQL, listens on [`CHANGE_CHANNEL`] until `shutdown` turns true and re-reads
    /// the revision on every notification, so a change made by another replica wakes this
    /// one's long-polls within milliseconds. Reconnects (with a pause) when the listening
    /// connection fails; [`Self::poll_store`] covers the gap. Returns at once on SQLite.
    pub async fn listen_store(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let Some(url) = self.store.postgres_url().map(str::to_owned) else {
            return;
        };
        loop {
            let listener = async {
                let mut l = sqlx::postgres::PgListener::connect(&url).await?;
                l.listen(CHANGE_CHANNEL).await?;
                Ok::<_, sqlx::Error>(l)
            };
            let mut listener = tokio::select! {
                l = listener => l,
                _ = shutdown.changed() => return,
            };
            match &mut listener {
                Ok(l) => {
                    tracing::debug!(channel = CHANGE_CHANNEL, "listening for registry changes");
                    // Changes committed while (re)connecting.
                    self.refresh().await;
                    loop {
                        tokio::select! {
                            n = l.recv() => match n {
                                Ok(_) => self.refresh().await,
                                Err(e) => {
                                    tracing::warn!(error = %e, "registry change listener failed");
                                    break;
                                }
                            },
                            _ = shutdown.changed() => return,
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "registry change listener could not connect"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::pgtest;
    use crate::store::{Action, Change};

    fn change() -> Change<'static> {
        Change {
            admin: "alice",
            action: Action::DatasetCloseAll,
            target: "*",
            reason: "test",
        }
    }

    /// Two replicas on one PostgreSQL schema: a change committed through one wakes the other's
    /// long-polls. Only the listener runs (no revision poll), so nothing else can wake it.
    #[tokio::test]
    async fn a_change_on_one_replica_wakes_the_other_through_notify() {
        let (schema, url) = pgtest::create_schema("notify").await.unwrap();
        let a = Store::open(&url).await.unwrap();
        let b = Store::open(&url).await.unwrap();
        let dist = Distributor::new(b.clone(), SigningKey::from_bytes(&[7; 32]))
            .await
            .unwrap();
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(dist.clone().listen_store(rx));

        // The first change may land before LISTEN is up; the listener re-reads on connect.
        let before = dist.current();
        let rev = a.set_all_closed(true, &change()).await.unwrap().revision;
        assert!(dist.wait_after(before, Duration::from_secs(10)).await);
        assert_eq!(dist.current(), rev);
        // The listener is up now: this one can only arrive as a notification.
        let rev = a.set_all_closed(false, &change()).await.unwrap().revision;
        assert!(dist.wait_after(rev - 1, Duration::from_secs(10)).await);
        assert_eq!(dist.current(), rev);

        stop.send(true).unwrap();
        task.await.unwrap();
        a.close().await;
        b.close().await;
        pgtest::drop_schema(&schema).await.unwrap();
    }

    /// SQLite has no notifications: the listener returns at once.
    #[tokio::test]
    async fn the_listener_is_a_no_op_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Store::sqlite_url(dir.path())).await.unwrap();
        let dist = Distributor::new(store.clone(), SigningKey::from_bytes(&[7; 32]))
            .await
            .unwrap();
        let (_stop, rx) = watch::channel(false);
        tokio::time::timeout(Duration::from_secs(5), dist.listen_store(rx))
            .await
            .unwrap();
        store.close().await;
    }

    /// A gateway's contact is written when the revision answered or its certificate changes,
    /// not on every answer of the same revision.
    #[tokio::test]
    async fn contacts_are_written_on_a_new_revision_or_certificate_not_on_every_answer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Store::sqlite_url(dir.path())).await.unwrap();
        let dist = Distributor::new(store.clone(), SigningKey::from_bytes(&[7; 32]))
            .await
            .unwrap();
        let peer = Peer {
            id: "gw1".into(),
            fingerprint: "ff".into(),
            serial: "0a".into(),
            not_after: 1_900_000_000,
        };
        async fn seen(store: &Store) -> GatewayContact {
            store.gateway_contacts().await.unwrap().remove("gw1").unwrap()
        }
        // The stored row is overwritten with a marker: a write replaces it.
        async fn mark(store: &Store, c: GatewayContact) {
            let marked = GatewayContact {
                seen_at: "marker".into(),
                ..c
            };
            store.record_gateway_contact(&marked).await.unwrap();
        }
        dist.record_contact(&peer, 3).await;
        let first = seen(&store).await;
        assert_eq!(
            (first.revision, first.cert_serial.as_str(), first.cert_not_after),
            (3, "0a", 1_900_000_000)
        );
        assert!(first.seen_at.starts_with("20"), "{first:?}");
        mark(&store, first).await;
        dist.record_contact(&peer, 3).await;
        assert_eq!(
            seen(&store).await.seen_at,
            "marker",
            "the same revision again: not written"
        );
        dist.record_contact(&peer, 4).await;
        let moved = seen(&store).await;
        assert_eq!(moved.revision, 4);
        assert_ne!(moved.seen_at, "marker");
        mark(&store, moved).await;
        let renewed = Peer {
            serial: "0b".into(),
            not_after: 1_950_000_000,
            ..peer.clone()
        };
        dist.record_contact(&renewed, 4).await;
        let c = seen(&store).await;
        assert_eq!(
            (c.cert_serial.as_str(), c.cert_not_after, c.seen_at == "marker"),
            ("0b", 1_950_000_000, false)
        );
        store.close().await;
    }
}
