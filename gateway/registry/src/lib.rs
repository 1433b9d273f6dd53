//! `sluice registry`: the licence authority.
//!
//! It keeps licensees, the catalog, licences, violations, revoked certificate serials and
//! every administrative change in SQL ([`store`]: SQLite by default, PostgreSQL by URL), and
//! serves on one HTTPS port (the shared accept loop, client certificates optional at the TLS
//! layer and checked per route):
//!
//! * admin routes `/admin/…` for admin certificates (`urn:sluice:admin:<name>`), each change
//!   recorded with who, when, what and why under the next change number; a change that alters
//!   what a snapshot carries also makes that number the snapshot revision
//!   ([`action::Action::alters_snapshot`]);
//! * `GET /v1/snapshot[?after=<rev>&wait=<s≤30>]` for gateway certificates: the current
//!   [`SignedSnapshot`](sluice_policy::snapshot::SignedSnapshot), long-polled;
//! * `POST /v1/usage` for gateway certificates: per-licence usage counts ([`usage`]);
//! * `POST /v1/risk-alerts` for gateway certificates: risk alerts, a `suspend` alert
//!   suspending the licence everywhere ([`risk`], [`risk_api`]);
//! * `GET /reports/usage?month=YYYY-MM|year=YYYY` for admin certificates: usage reports as an
//!   HTML page with charts, CSV or JSON ([`report`]);
//! * public pages without a certificate: `/catalog` (and each entry's history,
//!   `/catalog/<id>/history`), `/violations`, `/openapi.json`,
//!   `/v1/registry-key`, and the demand list (`/demands`, `/demands/new`, `POST /v1/demands`).
//!
//! `sluice admin …` (in the `sluice` binary) drives the admin API through
//! [`sluice_net::registry_client::RegistryClient`].
//!
//! The modules are layered; each imports only from the layers above it:
//!
//! 1. data and pure logic: [`model`] (records and request bodies), [`action`] (admin actions
//!    and which of them move the snapshot revision), [`fusion`] (fusion rules and the
//!    completion check), [`risk`] (risk rules and alerts), [`demand`] (the public demand
//!    list: requests, the merge rule, answers), [`catalog_history`] (catalog versions and
//!    what changed between two), [`credit_code`], [`config`], [`keys`];
//! 2. [`store`]: the SQL store;
//! 3. [`problem`] (refusals, store errors as problems), [`request`] (the helpers every handler
//!    shares: bodies, JSON responses, query parameters, id and reason checks), [`snapshot`]
//!    (signing and distribution);
//! 4. handlers: [`parties`], [`grant`], [`fusion_admin`] (validating new fusion rules),
//!    [`usage`], [`report`] (usage reports: page, CSV, JSON), [`public`], [`drill`] (emergency
//!    drill reports: their checks and records), [`risk_api`] (risk rules and alerts),
//!    [`demand_api`] (the demand list: filing, the public list and form, answers),
//!    [`catalog_history_api`] (entries' histories, evaluation dates), [`gateway_health`]
//!    (`/admin/gateways/health`: each gateway's last snapshot contact, staleness, last usage
//!    report and certificate expiry);
//! 5. [`api`]: the routes.

pub mod action;
pub mod api;
pub mod application;
pub mod application_api;
pub mod catalog_history;
pub mod catalog_history_api;
pub mod config;
pub mod console;
pub mod credit_code;
pub mod demand;
pub mod demand_api;
pub mod drill;
pub mod fusion;
pub mod fusion_admin;
pub mod gateway_health;
pub mod grant;
pub mod keys;
pub mod metrics;
pub mod model;
pub mod objection;
pub mod objection_api;
pub mod parties;
#[cfg(any(test, feature = "pgtest"))]
pub mod pgtest;
pub mod problem;
pub mod public;
pub mod report;
pub mod request;
pub mod risk;
pub mod risk_api;
pub mod routes;
pub mod scope;
pub mod snapshot;
pub mod store;
pub mod terms;
pub mod usage;

#[cfg(test)]
mod store_tests;

/// The snapshot signing key's public half, as [`Running::public_key`] gives it.
pub use ed25519_dalek::VerifyingKey;

use config::RegistryConfig;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
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
    Tls(#[from] sluice_net::tls::TlsError),
    /// Binding the listener.
    #[error("bind {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// Waiting for a stop signal failed.
    #[error("signal handling: {0}")]
    Signal(std::io::Error),
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
    sluice_net::tls::install_provider();
    std::fs::create_dir_all(&cfg.state_dir)
        .map_err(|e| RegistryError::StateDir(cfg.state_dir.display().to_string(), e))?;
    let key = keys::load_or_create(&cfg.signing_key_path())?;
    let public_key = key.verifying_key();
    let url = cfg
        .database_url
        .clone()
        .unwrap_or_else(|| store::Store::sqlite_url(&cfg.state_dir));
    let store = store::Store::open(&url).await?;
    let tls = sluice_net::tls::server_config(
        &cfg.cert,
        &cfg.key,
        sluice_net::tls::ClientAuth::Optional {
            ca: &cfg.client_ca,
            crl: cfg.crl.as_deref(),
        },
    )?;
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
        filings: objection_api::Filings::default(),
        demand_filings: objection_api::Filings::default(),
        dist,
    });
    let limits = sluice_net::server::ServeLimits {
        send_buffer_bytes: None,
        max_connections: None,
        handshake_timeout: Duration::from_secs(10),
        header_read_timeout: Duration::from_secs(10),
        max_header_bytes: None,
        max_headers: None,
        max_concurrent_streams: None,
        h2_keep_alive_interval: None,
        drain_timeout: Duration::from_secs(5),
    };
    let task = tokio::spawn(sluice_net::server::serve(
        "registry",
        listener,
        move || tls.clone(),
        limits,
        Arc::new(()),
        rx,
        move |conn, req| api.clone().handle(conn, req),
    ));
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
pub async fn run(config: &Path) -> Result<(), RegistryError> {
    let cfg = RegistryConfig::load(config)?;
    let running = start(&cfg).await?;
    println!("registry on https://{}", running.addr);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(RegistryError::Signal)?;
    sluice_net::service::ready("serving");
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(RegistryError::Signal)?,
        _ = term.recv() => {}
    }
    sluice_net::service::stopping();
    running.stop().await;
    Ok(())
}
