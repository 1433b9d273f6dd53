//! The gateway's subscription to the registry: a long-poll over mTLS for the signed licence
//! snapshot, verified, persisted atomically to `<state_dir>/snapshot.json` and handed to the
//! gateway over a channel ([`SnapshotUpdate`]); the gateway applies it to its runtime and
//! acknowledges, and only then does the subscription count the registry's answer as a
//! confirmation.
//!
//! Once a snapshot is held, polls ask for deltas: a signed delta from the held revision is
//! verified (signature, and its base must be the held revision), applied, and appended to
//! `<state_dir>/snapshot-deltas.json`; a restart verifies the snapshot and applies the
//! persisted deltas again. A delta that is refused makes the next poll ask for the whole
//! snapshot, and so does a chain of [`MAX_CHAIN`] deltas (which the whole snapshot replaces).
//!
//! Freshness is the time the registry last *confirmed* the snapshot (any successful answer,
//! the 204 long-poll timeout included). Past `staleness_bound_s` conditional data is refused
//! with `registry-stale`. The confirmation time survives restarts as the modification time of
//! the persisted snapshot, so a restarted gateway is exactly as fresh as before it stopped.

use crate::config::RegistrySection;
use ed25519_dalek::VerifyingKey;
use sluice_net::registry_client::{ClientError, RegistryClient, Update};
use sluice_policy::snapshot::{parse_public_key, SignedDelta, SignedSnapshot, Snapshot, SnapshotError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot, watch};

/// Why the subscription could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    /// A trusted key is not base64 Ed25519.
    #[error("registry.public_key: {0}")]
    BadKey(String),
    /// The client TLS material could not be loaded.
    #[error("registry client: {0}")]
    Client(#[from] ClientError),
}

/// The registry snapshot is older than the staleness bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe(*.age, *.bound))]
pub struct Stale {
    /// Time since the last confirmation; `None` if never confirmed.
    pub age: Option<Duration>,
    /// The configured bound.
    pub bound: Duration,
}

fn describe(age: Option<Duration>, bound: Duration) -> String {
    match age {
        Some(a) => format!(
            "the registry last confirmed the licence snapshot {} s ago; the bound is {} s",
            a.as_secs(),
            bound.as_secs()
        ),
        None => format!(
            "the registry has not yet confirmed a licence snapshot; the bound is {} s",
            bound.as_secs()
        ),
    }
}

/// Subscription state shared by the poll task, the data plane and `/readyz`.
pub struct Subscription {
    trusted: Vec<VerifyingKey>,
    bound: Duration,
    path: PathBuf,
    deltas_path: PathBuf,
    current: RwLock<Option<Arc<Snapshot>>>,
    /// The deltas applied since the persisted snapshot, as persisted.
    chain: Mutex<Vec<SignedDelta>>,
    confirmed: Mutex<Option<SystemTime>>,
    opened: SystemTime,
}

impl Subscription {
    /// Reads the trusted keys and loads (and verifies again) the persisted snapshot, if any.
    pub fn open(cfg: &RegistrySection, state_dir: &Path) -> Result<Self, SubscriptionError> {
        let trusted = cfg
            .public_key
            .iter()
            .map(|k| parse_public_key(k).map_err(|e| SubscriptionError::BadKey(e.0)))
            .collect::<Result<Vec<_>, _>>()?;
        let reg = Self {
            trusted,
            bound: Duration::from_secs(cfg.staleness_bound_s),
            path: state_dir.join("snapshot.json"),
            deltas_path: state_dir.join("snapshot-deltas.json"),
            current: RwLock::new(None),
            chain: Mutex::new(Vec::new()),
            confirmed: Mutex::new(None),
            opened: SystemTime::now(),
        };
        reg.load_persisted();
        Ok(reg)
    }

    fn load_persisted(&self) {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot read the persisted snapshot");
                return;
            }
        };
        let verified = serde_json::from_slice::<SignedSnapshot>(&bytes)
            .map_err(|e| SnapshotError::Malformed(e.to_string()))
            .and_then(|s| s.verify(&self.trusted, 0));
        // A chain that does not verify and apply whole rejects the persisted state: starting
        // from the snapshot alone would undo the changes the chain carried.
        let verified = verified.and_then(|mut snap| {
            let chain = self.load_chain(&mut snap)?;
            Ok((snap, chain))
        });
        match verified {
            Ok((snap, chain)) => {
                tracing::info!(
                    revision = snap.revision,
                    deltas = chain.len(),
                    "starting from the persisted registry snapshot"
                );
                *self.chain.lock().unwrap_or_else(|p| p.into_inner()) = chain;
                let mtime = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
                *self.confirmed.lock().unwrap_or_else(|p| p.into_inner()) = mtime;
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(snap));
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "persisted snapshot rejected")
            }
        }
    }

    /// Applies the persisted deltas that follow `snap`, in order, each verified again;
    /// returns them. Deltas the snapshot already contains (left by a crash between writing a
    /// whole snapshot and removing the chain) are skipped.
    fn load_chain(&self, snap: &mut Snapshot) -> Result<Vec<SignedDelta>, SnapshotError> {
        let chain: Vec<SignedDelta> = match std::fs::read(&self.deltas_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| SnapshotError::Malformed(format!("{}: {e}", self.deltas_path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(SnapshotError::Malformed(format!(
                    "{}: {e}",
                    self.deltas_path.display()
                )))
            }
        };
        let mut applied = Vec::with_capacity(chain.len());
        for d in chain {
            let delta = d.verify(&self.trusted)?;
            if delta.revision <= snap.revision {
                continue;
            }
            *snap = delta.apply(snap)?;
            applied.push(d);
        }
        Ok(applied)
    }

    /// Deltas applied since the persisted whole snapshot.
    pub fn chain_len(&self) -> usize {
        self.chain.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The snapshot in force.
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Revision held (0 if none).
    pub fn revision(&self) -> u64 {
        self.current().map(|s| s.revision).unwrap_or(0)
    }

    /// Time since the registry last confirmed the snapshot; `None` if it never did.
    pub fn age(&self) -> Option<Duration> {
        let confirmed = *self.confirmed.lock().unwrap_or_else(|p| p.into_inner());
        confirmed.map(|t| SystemTime::now().duration_since(t).unwrap_or_default())
    }

    /// Time since the last confirmation or, if there was none, since the subscription opened
    /// (at least that long without one).
    pub fn unconfirmed_for(&self) -> Duration {
        self.age()
            .unwrap_or_else(|| SystemTime::now().duration_since(self.opened).unwrap_or_default())
    }

    /// Whether the registry confirmed the snapshot within the bound.
    pub fn freshness(&self) -> Result<(), Stale> {
        let age = self.age();
        match age {
            Some(a) if a <= self.bound => Ok(()),
            _ => Err(Stale {
                age,
                bound: self.bound,
            }),
        }
    }

    /// Records a confirmation from the registry (and touches the persisted file's mtime).
    fn confirm(&self) {
        let now = SystemTime::now();
        *self.confirmed.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
        if let Ok(f) = std::fs::File::options().append(true).open(&self.path) {
            let _ = f.set_modified(now);
        }
    }

    /// Verifies a received snapshot against the trusted keys and the held revision. Returns
    /// `Some` when it is newer and has been persisted and taken as current.
    pub fn accept(&self, signed: &SignedSnapshot) -> Result<Option<Arc<Snapshot>>, AcceptError> {
        let held = self.current();
        let snap = signed.verify(&self.trusted, held.as_ref().map(|s| s.revision).unwrap_or(0))?;
        if held.is_some_and(|h| h.revision == snap.revision) {
            return Ok(None);
        }
        persist(
            &self.path,
            &serde_json::to_vec(signed).map_err(std::io::Error::other)?,
        )?;
        // The deltas applied to the snapshot this one replaces no longer apply.
        let mut chain = self.chain.lock().unwrap_or_else(|p| p.into_inner());
        chain.clear();
        match std::fs::remove_file(&self.deltas_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let snap = Arc::new(snap);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(snap.clone());
        Ok(Some(snap))
    }

    /// Verifies a received delta against the trusted keys and applies it to the held snapshot
    /// (its base must be the held revision), persists it after the chain and takes the result
    /// as current.
    pub fn accept_delta(&self, signed: &SignedDelta) -> Result<Arc<Snapshot>, AcceptError> {
        let held = self.current().ok_or(AcceptError::NoBase)?;
        let snap = signed.apply(&self.trusted, &held)?;
        let mut chain = self.chain.lock().unwrap_or_else(|p| p.into_inner());
        chain.push(signed.clone());
        let bytes = serde_json::to_vec(&*chain).map_err(std::io::Error::other);
        if let Err(e) = bytes.and_then(|b| persist(&self.deltas_path, &b)) {
            chain.pop();
            return Err(e.into());
        }
        let snap = Arc::new(snap);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(snap.clone());
        Ok(snap)
    }
}

/// Deltas a gateway applies after its persisted snapshot before it asks for a whole one.
pub const MAX_CHAIN: usize = 256;

/// Why a received snapshot was not taken.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// Signature, key or revision check failed.
    #[error(transparent)]
    Rejected(#[from] SnapshotError),
    /// It could not be persisted (so it is not applied either).
    #[error("persisting the snapshot: {0}")]
    Persist(#[from] std::io::Error),
    /// A delta arrived while no snapshot is held.
    #[error("a delta needs a snapshot to apply to; none is held")]
    NoBase,
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync the folder.
fn persist(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A verified, persisted snapshot for the gateway to apply; `applied` is answered once the
/// gateway's runtime enforces it.
#[derive(Debug)]
pub struct SnapshotUpdate {
    /// The snapshot.
    pub snapshot: Arc<Snapshot>,
    /// Answered when applied.
    pub applied: oneshot::Sender<()>,
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Long-polls the registry until `stop` turns true, handing each newer verified snapshot to
/// `apply` and waiting until it is applied. After a failed poll the next one does not wait:
/// when the registry is back, its first answer confirms freshness within one round trip
/// instead of after a whole long-poll wait.
pub async fn run(
    reg: Arc<Subscription>,
    apply: mpsc::Sender<SnapshotUpdate>,
    client: RegistryClient,
    wait: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut recovering = false;
    // After a refused delta, or once the chain is long, the next poll asks for the whole
    // snapshot.
    let mut whole = false;
    loop {
        // A registry whose snapshot never changed serves revision 0: held, it is waited on
        // like any other, not fetched again at once.
        let after = reg.current().map(|s| s.revision);
        let this_wait = if recovering { Duration::ZERO } else { wait };
        let delta = !whole && reg.chain_len() < MAX_CHAIN;
        let answer = tokio::select! {
            a = client.poll(after, this_wait, delta) => a,
            _ = stop.changed() => return,
        };
        // A snapshot that fails verification confirms nothing and is retried like an error.
        let ok = match answer {
            Ok(Some(Update::Snapshot(signed))) => match reg.accept(&signed) {
                Ok(Some(snapshot)) => hand_over(&apply, snapshot).await,
                Ok(None) => true,
                Err(e) => {
                    tracing::error!(error = %e, "registry snapshot rejected; the previous state stays in force");
                    false
                }
            },
            Ok(Some(Update::Delta(signed))) => match reg.accept_delta(&signed) {
                Ok(snapshot) => hand_over(&apply, snapshot).await,
                Err(e) => {
                    tracing::error!(error = %e, "registry delta rejected; the previous state stays in force and the whole snapshot is asked for");
                    whole = true;
                    false
                }
            },
            Ok(None) => true,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "registry poll failed");
                false
            }
        };
        if ok {
            whole = false;
        }
        recovering = !ok;
        if ok {
            reg.confirm();
            backoff = BACKOFF_MIN;
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Hands a snapshot to the gateway and waits until it is applied; false if the gateway is
/// gone (shutting down).
async fn hand_over(apply: &mpsc::Sender<SnapshotUpdate>, snapshot: Arc<Snapshot>) -> bool {
    let (applied, done) = oneshot::channel();
    let (revision, licences) = (snapshot.revision, snapshot.licences.len());
    if apply.send(SnapshotUpdate { snapshot, applied }).await.is_err() || done.await.is_err() {
        return false;
    }
    tracing::info!(revision, licences, "registry snapshot applied");
    true
}
