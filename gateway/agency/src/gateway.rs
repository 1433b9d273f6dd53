//! The running gateway: the state its tasks share, start-up, reload (SIGHUP or file changes)
//! and drain (SIGTERM).
//!
//! Tasks talk to it without calling back into it: the data plane reads the runtime through an
//! [`ArcSwap`], the subscription hands snapshots over a channel, the file watcher gets a
//! reload closure and the admin listener a [`Health`].

use crate::admin::Health;
use crate::audit::{AuditError, AuditLog, AuditOptions};
use crate::config::{Config, ConfigError};
use crate::data_plane::stall::StallWatch;
use crate::data_plane::{self, DataPlane, Outcomes};
use crate::limits::{Limiter, PublicLimits, RedisLimits, SharedLimitsDown};
use crate::listeners::{self, ListenerKind};
use crate::metrics::{CertLabels, Metrics};
use crate::runtime::Runtime;
use crate::subscription::{self, SnapshotUpdate, Subscription, SubscriptionError};
use crate::usage::UsageCounters;
use crate::usage_report::Reporter;
use arc_swap::ArcSwap;
use rustls::ServerConfig;
use sluice_connectors::Shared;
use sluice_net::registry_client::{ClientError, RegistryClient};
use sluice_net::server::serve;
use sluice_net::tls::{self, TlsError};
use sluice_policy::snapshot::Snapshot;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Why the gateway could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad config.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Bad TLS material.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A listener could not bind, or state could not be written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The audit log could not be opened.
    #[error("audit log: {0}")]
    Audit(#[from] AuditError),
    /// `[registry]` could not be set up (trusted keys, persisted snapshot).
    #[error(transparent)]
    Subscription(#[from] SubscriptionError),
    /// `[registry]`'s client could not be set up.
    #[error("registry client: {0}")]
    RegistryClient(#[from] ClientError),
    /// `[limits] redis_url` could not be set up.
    #[error("limits.redis_url: {0}")]
    SharedLimits(#[source] SharedLimitsDown),
    /// `[risk]`'s webhook could not be set up.
    #[error(transparent)]
    Risk(crate::risk::WebhookError),
}

/// Shared state of one gateway process. The runtime, audit log, metrics, usage counters and
/// subscription are the data plane's; the gateway reaches them through it.
pub struct Gateway {
    tls_data: ArcSwap<ServerConfig>,
    tls_public: ArcSwap<ServerConfig>,
    config_path: PathBuf,
    master_key: Vec<u8>,
    connectors: Shared,
    reload_lock: Mutex<()>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    watch_polls: AtomicU64,
    /// What the request path works with.
    pub plane: Arc<DataPlane>,
}

/// How many reloads (SIGHUP or file watching) succeeded and were refused since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadStats {
    /// Reloads that swapped in the new state.
    pub ok: u64,
    /// Reloads refused (the previous state stayed in force).
    pub failed: u64,
    /// Polls of the file watcher so far (changed files or not).
    pub watch_polls: u64,
}

/// A started gateway: its bound addresses and a way to stop it.
pub struct Running {
    /// Shared state.
    pub gateway: Arc<Gateway>,
    /// Bound data listener address.
    pub data_addr: SocketAddr,
    /// Bound public listener address, if configured.
    pub public_addr: Option<SocketAddr>,
    /// Bound admin listener address.
    pub admin_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    usage_reporter: Option<JoinHandle<Reporter>>,
}

/// Longest wait for the registry to take the last usage report at shutdown.
const USAGE_FLUSH_WAIT: Duration = Duration::from_secs(5);

impl Running {
    /// Stops accepting, drains open connections, reports usage a last time (bounded wait),
    /// flushes the audit log.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some(r) = self.usage_reporter {
            if let Ok(reporter) = r.await {
                reporter.flush(USAGE_FLUSH_WAIT).await;
            }
        }
        if let Err(e) = self.gateway.audit().close().await {
            tracing::error!(error = %e, "audit log close failed");
        }
    }
}

impl Gateway {
    /// The current runtime (config compiled for the request path).
    pub fn runtime(&self) -> Arc<Runtime> {
        self.plane.runtime.load_full()
    }

    /// The audit log.
    pub fn audit(&self) -> &Arc<AuditLog> {
        &self.plane.outcomes.audit
    }

    /// Metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.plane.outcomes.metrics
    }

    /// The registry subscription, when `[registry]` is configured.
    pub fn subscription(&self) -> Option<&Arc<Subscription>> {
        self.plane.subscription.as_ref()
    }

    /// Re-reads config, licences and TLS files. On any error the old state stays in force.
    /// Concurrent calls (SIGHUP, the file watcher) run one after the other.
    pub fn reload(&self) -> Result<(), StartError> {
        let _one_at_a_time = self.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let result = self.swap_in_files();
        let counter = match result {
            Ok(()) => &self.reloads_ok,
            Err(_) => &self.reloads_failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    /// Reloads so far.
    pub fn reload_stats(&self) -> ReloadStats {
        ReloadStats {
            ok: self.reloads_ok.load(Ordering::Relaxed),
            failed: self.reloads_failed.load(Ordering::Relaxed),
            watch_polls: self.watch_polls.load(Ordering::Relaxed),
        }
    }

    fn swap_in_files(&self) -> Result<(), StartError> {
        let config = Config::load(&self.config_path)?;
        let data = listeners::data_tls(&config.listeners.data)?;
        let public = listeners::public_tls(&config.listeners.data)?;
        self.record_cert_expiry(&config);
        let snapshot = self.subscription().and_then(|s| s.current());
        // A reload reads the sources' credential files again (a rotated token, certificate or
        // password): its connectors are new. A licence snapshot keeps them (and their pools).
        self.connectors.renew();
        let runtime = Runtime::build(config, &self.master_key, snapshot.as_deref(), &self.connectors);
        self.plane.runtime.store(Arc::new(runtime));
        self.tls_data.store(data);
        self.tls_public.store(public);
        tracing::info!("configuration and certificates reloaded");
        Ok(())
    }

    /// Rebuilds the runtime with a new registry snapshot (licences, measures, revoked serials)
    /// over the config in force.
    pub fn apply_snapshot(&self, snapshot: &Snapshot) {
        let _one_at_a_time = self.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let config = self.runtime().config.clone();
        let runtime = Runtime::build(config, &self.master_key, Some(snapshot), &self.connectors);
        self.plane.runtime.store(Arc::new(runtime));
        if let Some(risk) = &self.plane.outcomes.risk {
            risk.snapshot_applied(&snapshot.risk_rules, snapshot.revision);
        }
    }

    fn record_cert_expiry(&self, config: &Config) {
        let l = &config.listeners.data;
        for (name, path) in [("server", &l.cert), ("client_ca", &l.client_ca)] {
            match std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|pem| sluice_certs::days_to_expiry(&pem).map_err(|e| e.to_string()))
            {
                Ok(days) => {
                    self.metrics()
                        .cert_days_to_expiry
                        .get_or_create(&CertLabels { cert: name.into() })
                        .set(days);
                    if days < 30 {
                        tracing::warn!(cert = name, days, path = %path.display(), "certificate expires in under 30 days");
                    }
                }
                Err(e) => tracing::warn!(cert = name, error = %e, "cannot read certificate expiry"),
            }
        }
    }

    /// Loads config, opens state, binds listeners and starts serving.
    pub async fn start(config_path: &Path) -> Result<Running, StartError> {
        tls::install_provider();
        let config = Config::load(config_path)?;
        let io = |what: String| move |source| StartError::Io { what, source };
        std::fs::create_dir_all(&config.gateway.state_dir)
            .map_err(io(format!("creating {}", config.gateway.state_dir.display())))?;
        let master_key = load_or_create_master_key(&config)?;
        let tls_data = listeners::data_tls(&config.listeners.data)?;
        let tls_public = listeners::public_tls(&config.listeners.data)?;
        let audit =
            Arc::new(AuditLog::open(&config.gateway.state_dir.join("audit"), AuditOptions::default()).await?);
        let bind = |addr: SocketAddr, what: &'static str| async move {
            let l = TcpListener::bind(addr)
                .await
                .map_err(io(format!("binding {what} listener {addr}")))?;
            let local = l.local_addr().map_err(io(format!("{what} listener address")))?;
            Ok::<_, StartError>((l, local))
        };
        let (data_listener, data_addr) = bind(config.listeners.data.addr, "data").await?;
        let public = match &config.listeners.public {
            Some(p) => Some(bind(p.addr, "public").await?),
            None => None,
        };
        let public_addr = public.as_ref().map(|(_, a)| *a);
        let (admin_listener, admin_addr) = bind(config.listeners.admin.addr, "admin").await?;
        let metrics = Arc::new(Metrics::new(config.registry.is_some()));
        let (subscription, registry_client) = open_registry(&config)?;
        let shared_limits = match &config.limits.redis_url {
            Some(url) => {
                Some(RedisLimits::new(url, &config.limits.redis_prefix).map_err(StartError::SharedLimits)?)
            }
            None => None,
        };
        let per_ip = config
            .listeners
            .public
            .as_ref()
            .map(|p| PublicLimits::new(p.per_ip_per_second, p.per_ip_burst));
        let connectors = Shared::for_sources(config.sources.values());
        let snapshot = subscription.as_ref().and_then(|r| r.current());
        let runtime = Arc::new(ArcSwap::from_pointee(Runtime::build(
            config.clone(),
            &master_key,
            snapshot.as_deref(),
            &connectors,
        )));
        let usage = config
            .registry
            .as_ref()
            .map(|_| Arc::new(UsageCounters::default()));
        // Risk rules come from the registry: a gateway without one has none.
        let webhook = crate::risk::Webhook::from_config(&config.risk).map_err(StartError::Risk)?;
        let (risk, risk_alerts) = match &config.registry {
            Some(_) => {
                let (watch, alerts) = crate::risk::RiskWatch::new(metrics.clone());
                if let Some(s) = snapshot.as_deref() {
                    watch.snapshot_applied(&s.risk_rules, s.revision);
                }
                (Some(watch), Some(alerts))
            }
            None => (None, None),
        };
        let plane = Arc::new(DataPlane {
            runtime,
            limiter: Arc::new(Limiter::new(shared_limits, per_ip)),
            outcomes: Outcomes {
                audit: audit.clone(),
                metrics: metrics.clone(),
                usage,
                sources: Arc::default(),
                risk: risk.clone(),
            },
            subscription: subscription.clone(),
            stalls: StallWatch::start(),
        });
        let gateway = Arc::new(Gateway {
            tls_data: ArcSwap::new(tls_data),
            tls_public: ArcSwap::new(tls_public),
            config_path: config_path.to_owned(),
            master_key,
            connectors,
            reload_lock: Mutex::new(()),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            watch_polls: AtomicU64::new(0),
            plane: plane.clone(),
        });
        gateway.record_cert_expiry(&config);
        let (shutdown, rx) = watch::channel(false);
        let limits = listeners::serve_limits(&config.limits);
        let mut tasks = Vec::new();
        {
            let gw = gateway.clone();
            tasks.push(tokio::spawn(serve(
                "data",
                data_listener,
                move || gw.tls_data.load_full(),
                limits.clone(),
                metrics.clone(),
                rx.clone(),
                data_plane::handler(plane.clone(), ListenerKind::Data),
            )));
        }
        if let Some((l, _)) = public {
            let gw = gateway.clone();
            tasks.push(tokio::spawn(serve(
                "public",
                l,
                move || gw.tls_public.load_full(),
                limits.clone(),
                metrics.clone(),
                rx.clone(),
                data_plane::handler(plane.clone(), ListenerKind::Public),
            )));
            tasks.push(tokio::spawn(forget_idle_ips(plane.clone(), rx.clone())));
        }
        if config.gateway.watch_interval_ms > 0 {
            let files =
                crate::watch::FileWatch::new(config_path, crate::watch::watched_paths(config_path, &config));
            let gw = gateway.clone();
            let polled = gateway.clone();
            tasks.push(tokio::spawn(crate::watch::run(
                move || gw.reload(),
                move || {
                    polled.watch_polls.fetch_add(1, Ordering::Relaxed);
                },
                files,
                Duration::from_millis(config.gateway.watch_interval_ms),
                rx.clone(),
            )));
        }
        if let (Some(watch), Some(alerts)) = (risk, risk_alerts) {
            let delivery = crate::risk::Delivery {
                gateway: config.gateway.id.clone(),
                registry: registry_client.as_ref().map(|(c, _)| c.clone()),
                webhook,
            };
            tasks.push(tokio::spawn(crate::risk::deliver(
                watch,
                alerts,
                delivery,
                rx.clone(),
            )));
        }
        let mut usage_reporter = None;
        if let (Some(counters), Some(r), Some((client, _))) =
            (&plane.outcomes.usage, &config.registry, &registry_client)
        {
            let reporter = Reporter::new(
                counters.clone(),
                client.clone(),
                metrics.clone(),
                &config.gateway.state_dir,
            );
            usage_reporter = Some(tokio::spawn(
                reporter.run(Duration::from_secs(r.usage_interval_s), rx.clone()),
            ));
        }
        if let (Some(sub), Some((client, wait))) = (subscription, registry_client) {
            let (apply, updates) = mpsc::channel(1);
            tasks.push(tokio::spawn(apply_snapshots(gateway.clone(), updates)));
            tasks.push(tokio::spawn(subscription::run(
                sub,
                apply,
                client,
                wait,
                rx.clone(),
            )));
        }
        let health = Arc::new(Health {
            audit: plane.outcomes.audit.clone(),
            subscription: plane.subscription.clone(),
            metrics: metrics.clone(),
            runtime: plane.runtime.clone(),
            sources: plane.outcomes.sources.clone(),
        });
        tasks.push(tokio::spawn(crate::admin::serve(
            admin_listener,
            health,
            rx.clone(),
        )));
        tracing::info!(%data_addr, ?public_addr, %admin_addr, gateway = %config.gateway.id, "gateway listening");
        Ok(Running {
            gateway,
            data_addr,
            public_addr,
            admin_addr,
            shutdown,
            tasks,
            usage_reporter,
        })
    }
}

/// Applies the snapshots the subscription hands over until it stops.
async fn apply_snapshots(gw: Arc<Gateway>, mut updates: mpsc::Receiver<SnapshotUpdate>) {
    while let Some(u) = updates.recv().await {
        gw.apply_snapshot(&u.snapshot);
        let _ = u.applied.send(());
    }
}

/// Forgets idle per-IP limiter keys every minute until `stop`.
async fn forget_idle_ips(plane: Arc<DataPlane>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => plane.limiter.retain_recent(),
            _ = stop.changed() => break,
        }
    }
}

/// Runs a gateway until SIGTERM/SIGINT; SIGHUP reloads config and certificates.
pub async fn run(config_path: &Path) -> Result<(), StartError> {
    use tokio::signal::unix::{signal, SignalKind};
    let running = Gateway::start(config_path).await?;
    let signals = |source| StartError::Io {
        what: "installing signal handlers".into(),
        source,
    };
    let mut hup = signal(SignalKind::hangup()).map_err(signals)?;
    let mut term = signal(SignalKind::terminate()).map_err(signals)?;
    sluice_net::service::ready("serving");
    loop {
        tokio::select! {
            _ = hup.recv() => {
                sluice_net::service::reloading();
                if let Err(e) = running.gateway.reload() {
                    tracing::error!(error = %e, "reload refused; the previous configuration stays in force");
                }
                sluice_net::service::ready("serving");
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("draining");
    sluice_net::service::stopping();
    running.shutdown().await;
    Ok(())
}

type RegistryParts = (Option<Arc<Subscription>>, Option<(RegistryClient, Duration)>);

/// Opens the registry subscription state (loading the persisted snapshot) and its client.
fn open_registry(config: &Config) -> Result<RegistryParts, StartError> {
    let Some(r) = &config.registry else {
        return Ok((None, None));
    };
    let sub = Subscription::open(r, &config.gateway.state_dir)?;
    let client = RegistryClient::new(&r.url, &r.ca, Some((r.cert.as_path(), r.key.as_path())))?;
    Ok((
        Some(Arc::new(sub)),
        Some((client, Duration::from_secs(r.poll_wait_s))),
    ))
}

fn load_or_create_master_key(config: &Config) -> Result<Vec<u8>, StartError> {
    let path = config
        .gateway
        .master_key_file
        .clone()
        .unwrap_or_else(|| config.gateway.state_dir.join("pseudonym.key"));
    let io = |what: &str| {
        let what = format!("{what} {}", path.display());
        move |source| StartError::Io { what, source }
    };
    match std::fs::read(&path) {
        Ok(k) if k.len() >= 32 => Ok(k),
        Ok(_) => Err(StartError::Io {
            what: format!("master key {}", path.display()),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "shorter than 32 bytes"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = vec![0u8; 32];
            rustls::crypto::aws_lc_rs::default_provider()
                .secure_random
                .fill(&mut key)
                .map_err(|_| StartError::Io {
                    what: "generating the master key".into(),
                    source: std::io::Error::other("no randomness"),
                })?;
            write_private(&path, &key).map_err(io("writing"))?;
            Ok(key)
        }
        Err(e) => Err(io("reading")(e)),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
