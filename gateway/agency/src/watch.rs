//! File watching: reloads the gateway when its config, licences or TLS files change on disk.
//!
//! No inotify: every `[gateway] watch_interval_ms` the watcher stats the config file, the
//! licences file, the server certificate and key, the client CA bundle and the CRL, and compares
//! (modification time, size, inode) with what was last loaded. A change that still looks the
//! same one poll later (so a file caught in the middle of being written is not read) triggers
//! the reload it was given ([`Gateway::reload`](crate::gateway::Gateway::reload)). A refused
//! reload is logged once per change and the previous state stays in force until the files
//! change again. The file stats and the reload run on the blocking pool; the task ends when
//! the gateway shuts down.

use crate::config::Config;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// What the watcher compares for one file; `None` when the file cannot be stat'ed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

type Snapshot = Vec<(PathBuf, Option<Stamp>)>;

fn snapshot(paths: &[PathBuf]) -> Snapshot {
    paths
        .iter()
        .map(|p| {
            let stamp = std::fs::metadata(p).ok().map(|m| Stamp {
                modified: m.modified().ok(),
                len: m.len(),
                inode: m.ino(),
            });
            (p.clone(), stamp)
        })
        .collect()
}

/// The files a gateway's state is built from: the config file itself, then the licences file
/// and the data listener's TLS files named in `config` (paths already resolved).
pub fn watched_paths(config_path: &Path, config: &Config) -> Vec<PathBuf> {
    let d = &config.listeners.data;
    let mut paths = vec![config_path.to_owned()];
    paths.extend(config.licences_file.iter().cloned());
    paths.extend([d.cert.clone(), d.key.clone(), d.client_ca.clone()]);
    paths.extend(d.crl.iter().cloned());
    paths
}

/// The poll state: which files are watched and what they looked like when last loaded.
#[derive(Debug)]
pub struct FileWatch {
    config_path: PathBuf,
    paths: Vec<PathBuf>,
    applied: Snapshot,
    pending: Option<Snapshot>,
}

impl FileWatch {
    /// Starts watching `paths` (see [`watched_paths`]) as they are now.
    pub fn new(config_path: &Path, paths: Vec<PathBuf>) -> Self {
        Self {
            config_path: config_path.to_owned(),
            applied: snapshot(&paths),
            paths,
            pending: None,
        }
    }

    /// One poll. When the files changed and have been stable since the previous poll, calls
    /// `reload` and returns its result; otherwise `None`. After an attempt the watched set is
    /// re-read from the config file on disk (when it loads), so a newly configured CRL is
    /// watched, and a refused file is watched for its fix.
    pub fn poll<E>(&mut self, reload: impl FnOnce() -> Result<(), E>) -> Option<Result<(), E>> {
        let now = snapshot(&self.paths);
        if now == self.applied {
            self.pending = None;
            return None;
        }
        if self.pending.as_ref() != Some(&now) {
            self.pending = Some(now);
            return None;
        }
        self.pending = None;
        let result = reload();
        let paths = match Config::load(&self.config_path) {
            Ok(c) => watched_paths(&self.config_path, &c),
            Err(_) => self.paths.clone(),
        };
        self.applied = if paths == self.paths {
            // What was loaded (or refused) is at least as new as `now`: a change after it is
            // seen at the next poll, at worst reloading the same files twice.
            now
        } else {
            self.paths = paths;
            snapshot(&self.paths)
        };
        Some(result)
    }
}

/// Polls every `interval` and calls `reload` on change until `stop` turns true; `on_poll` is
/// called after every poll.
pub async fn run<E: std::fmt::Display + Send + 'static>(
    reload: impl Fn() -> Result<(), E> + Clone + Send + 'static,
    on_poll: impl Fn() + Send + 'static,
    mut state: FileWatch,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let reload = reload.clone();
        let polled = tokio::task::spawn_blocking(move || {
            let outcome = state.poll(reload);
            (state, outcome)
        })
        .await;
        match polled {
            Ok((s, outcome)) => {
                state = s;
                on_poll();
                match outcome {
                    Some(Ok(())) => tracing::info!("files changed on disk; reloaded"),
                    Some(Err(e)) => tracing::warn!(
                        error = %e,
                        "files changed on disk but the reload was refused; the previous configuration stays in force"
                    ),
                    None => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "file watcher failed; changes are picked up on SIGHUP only");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, text: &str) {
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn reloads_once_per_stable_change_and_once_per_refused_change() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("gateway.toml");
        let crl = dir.path().join("crl.pem");
        write(&cfg, "not a config");
        write(&crl, "v1");
        let mut w = FileWatch::new(&cfg, vec![cfg.clone(), crl.clone()]);
        let calls = std::cell::Cell::new(0);
        let ok = || -> Result<(), String> {
            calls.set(calls.get() + 1);
            Ok(())
        };
        assert!(w.poll(ok).is_none(), "nothing changed");
        write(&crl, "version 2");
        assert!(w.poll(ok).is_none(), "a change waits one poll to settle");
        assert!(matches!(w.poll(ok), Some(Ok(()))));
        assert!(w.poll(ok).is_none(), "the change was applied");
        assert_eq!(calls.get(), 1);

        write(&crl, "bad");
        let failures = std::cell::Cell::new(0);
        let bad = || -> Result<(), String> {
            failures.set(failures.get() + 1);
            Err("malformed".into())
        };
        assert!(w.poll(bad).is_none());
        assert!(matches!(w.poll(bad), Some(Err(_))));
        for _ in 0..3 {
            assert!(w.poll(bad).is_none(), "a refused change is not retried");
        }
        assert_eq!(failures.get(), 1);

        // A removed file is a change too (its stamp is gone).
        std::fs::remove_file(&crl).unwrap();
        assert!(w.poll(bad).is_none());
        assert!(w.poll(bad).is_some());
        write(&crl, "fixed");
        assert!(w.poll(ok).is_none());
        assert!(matches!(w.poll(ok), Some(Ok(()))));
    }

    #[test]
    fn a_file_still_changing_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        write(&cert, "a");
        let mut w = FileWatch::new(&dir.path().join("gateway.toml"), vec![cert.clone()]);
        let calls = std::cell::Cell::new(0);
        let ok = || -> Result<(), String> {
            calls.set(calls.get() + 1);
            Ok(())
        };
        for n in 0..5 {
            write(&cert, &"b".repeat(n + 2));
            assert!(w.poll(ok).is_none());
        }
        assert!(w.poll(ok).is_some());
        assert_eq!(calls.get(), 1);
    }
}
