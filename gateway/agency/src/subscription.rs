//! The gateway's subscription to the registry: a long-poll over mTLS for the signed licence
//! snapshot, verified, persisted atomically to `<state_dir>/snapshot.json` and handed to the
//! gateway over a channel ([`SnapshotUpdate`]); the gateway applies it to its runtime and
//! acknowledges, and only then does the subscription count the registry's answer as a
//! confirmation.
//!
//! Freshness is the time the registry last *confirmed* the snapshot (any successful answer,
//! the 204 long-poll timeout included). Past `staleness_bound_s` conditional data is refused
//! with `registry-stale`. The confirmation time survives restarts as the modification time of
//! the persisted snapshot, so a restarted gateway is exactly as fresh as before it stopped.

use crate::config::RegistrySection;
use ed25519_dalek::VerifyingKey;
use sluice_net::registry_client::{ClientError, RegistryClient};
use sluice_policy::snapshot::{parse_public_key, SignedSnapshot, Snapshot, SnapshotError};
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
    current: RwLock<Option<Arc<Snapshot>>>,
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
            current: RwLock::new(None),
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
        match verified {
            Ok(snap) => {
                tracing::info!(
                    revision = snap.revision,
                    "starting from the persisted registry snapshot"
                );
                let mtime = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
                *self.confirmed.lock().unwrap_or_else(|p| p.into_inner()) = mtime;
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(snap));
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "persisted snapshot rejected")
            }
        }
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
        persist(&self.path, signed)?;
        let snap = Arc::new(snap);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(snap.clone());
        Ok(Some(snap))
    }
}

/// Why a received snapshot was not taken.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// Signature, key or revision check failed.
    #[error(transparent)]
    Rejected(#[from] SnapshotError),
    /// It could not be persisted (so it is not applied either).
    #[error("persisting the snapshot: {0}")]
    Persist(#[from] std::io::Error),
}

/// Writes the snapshot atomically: temp file, fsync, rename, fsync the folder.
fn persist(path: &Path, signed: &SignedSnapshot) -> std::io::Result<()> {
    use std::io::Write;
    let bytes = serde_json::to_vec(signed).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&bytes)?;
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
    loop {
        // A registry whose snapshot never changed serves revision 0: held, it is waited on
        // like any other, not fetched again at once.
        let after = reg.current().map(|s| s.revision);
        let this_wait = if recovering { Duration::ZERO } else { wait };
        let answer = tokio::select! {
            a = client.poll(after, this_wait) => a,
            _ = stop.changed() => return,
        };
        // A snapshot that fails verification confirms nothing and is retried like an error.
        let ok = match answer {
            Ok(Some(signed)) => match reg.accept(&signed) {
                Ok(Some(snapshot)) => hand_over(&apply, snapshot).await,
                Ok(None) => true,
                Err(e) => {
                    tracing::error!(error = %e, "registry snapshot rejected; the previous state stays in force");
                    false
                }
            },
            Ok(None) => true,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "registry poll failed");
                false
            }
        };
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
