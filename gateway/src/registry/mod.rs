//! `sluice registry`: the licence authority.
//!
//! It keeps licensees, the catalog, licences, violations, revoked certificate serials and
//! every administrative change in SQL ([`store`]: SQLite by default, PostgreSQL by URL), and
//! serves on one HTTPS port ([`listen`]):
//!
//! * admin routes `/admin/…` for admin certificates (`urn:sluice:admin:<name>`), each change
//!   recorded with who, when, what and why and bumping the revision;
//! * `GET /v1/snapshot[?after=<rev>&wait=<s≤30>]` for gateway certificates: the current
//!   [`SignedSnapshot`](sluice_policy::snapshot::SignedSnapshot), long-polled;
//! * `POST /v1/usage` for gateway certificates: per-licence usage counts ([`usage`]);
//! * public pages without a certificate: `/catalog`, `/violations`, `/openapi.json`,
//!   `/v1/registry-key`.
//!
//! `sluice admin …` ([`cli`]) drives the admin API.

pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod credit_code;
pub mod fusion;
pub mod grant;
pub mod keys;
pub mod listen;
pub mod model;
pub mod parties;
pub mod pgtest;
pub mod problem;
pub mod public;
pub mod snapshot;
pub mod store;
pub mod usage;

#[cfg(test)]
mod store_tests;

/// The snapshot signing key's public half, as [`Running::public_key`] gives it.
pub use ed25519_dalek::VerifyingKey;

use config::RegistryConfig;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::watch;

/// Why the registry could not start.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Bad config.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The state folder could not be made.
    #[error("state folder {0}: {1}")]
    StateDir(String, std::io::Error),
    /// The signing key.
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    /// The store.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// TLS material.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// Binding the listener.
    #[error("bind {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// A started registry.
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// The snapshot signing key's public half.
    pub public_key: VerifyingKey,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    store: store::Store,
}

impl Running {
    /// Stops accepting, drains and closes the store.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        self.store.close().await;
    }
}

/// Starts the registry described by `cfg` on the current runtime.
pub async fn start(cfg: &RegistryConfig) -> Result<Running, RegistryError> {
    crate::tls::install_provider();
    std::fs::create_dir_all(&cfg.state_dir)
        .map_err(|e| RegistryError::StateDir(cfg.state_dir.display().to_string(), e))?;
    let key = keys::load_or_create(&cfg.signing_key_path())?;
    let public_key = key.verifying_key();
    let url = cfg
        .database_url
        .clone()
        .unwrap_or_else(|| store::Store::sqlite_url(&cfg.state_dir));
    let store = store::Store::open(&url).await?;
    let tls = listen::server_config(cfg)?;
    let listener = tokio::net::TcpListener::bind(cfg.addr)
        .await
        .map_err(|e| RegistryError::Bind(cfg.addr, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| RegistryError::Bind(cfg.addr, e))?;
    let dist = snapshot::Distributor::new(store.clone(), key).await?;
    let (shutdown, rx) = watch::channel(false);
    tokio::spawn(dist.clone().poll_store(rx.clone()));
    tokio::spawn(dist.clone().listen_store(rx.clone()));
    let api = Arc::new(api::Api {
        store: store.clone(),
        dist,
    });
    let task = tokio::spawn(listen::serve(listener, tls, rx, move |caller, req| {
        api.clone().handle(caller, req)
    }));
    tracing::info!(%addr, database = %redact(&url), "registry listening");
    Ok(Running {
        addr,
        public_key,
        shutdown,
        task,
        store,
    })
}

fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Runs the registry from a config file until Ctrl-C or SIGTERM.
pub async fn run(config: &Path) -> anyhow::Result<()> {
    let cfg = RegistryConfig::load(config)?;
    let running = start(&cfg).await?;
    println!("registry on https://{}", running.addr);
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    running.stop().await;
    Ok(())
}
