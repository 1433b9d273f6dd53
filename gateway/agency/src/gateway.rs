//! The running gateway: shared state, listeners, reload (SIGHUP) and drain (SIGTERM).

use crate::audit::{AuditLog, AuditOptions};
use crate::config::{Config, ConfigError};
use crate::limits::{DailyQuotas, PublicLimits, RateLimits};
use crate::listeners::{self, ListenerKind};
use crate::metrics::{CertLabels, Metrics};
use crate::runtime::Runtime;
use rustls::ServerConfig;
use sluice_connectors::http::UpstreamClient;
use sluice_net::server::serve;
use sluice_net::tls::{self, TlsError};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
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
    Audit(String),
    /// `[registry]` or `[limits] redis_url` could not be set up.
    #[error("{0}")]
    Registry(String),
}

/// Shared state of one gateway process.
pub struct Gateway {
    runtime: RwLock<Arc<Runtime>>,
    tls_data: RwLock<Arc<ServerConfig>>,
    tls_public: RwLock<Arc<ServerConfig>>,
    config_path: PathBuf,
    master_key: Vec<u8>,
    reload_lock: Mutex<()>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    /// Rate limiters per licence.
    pub rate: RateLimits,
    /// Daily quotas per licence.
    pub quotas: DailyQuotas,
    /// Per-IP limits of the public listener.
    pub public_limits: Option<PublicLimits>,
    /// The audit log.
    pub audit: AuditLog,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Pooled client to the sources.
    pub upstream: UpstreamClient,
    /// The registry subscription, when `[registry]` is configured.
    pub registry: Option<Arc<crate::subscription::Registry>>,
    /// Rate limits and quotas shared through Redis, when `[limits] redis_url` is set.
    pub shared_limits: Option<Arc<crate::limits_redis::RedisLimits>>,
    /// Usage counters reported to the registry, when `[registry]` is configured.
    pub usage: Option<Arc<crate::usage::UsageCounters>>,
}

/// How many reloads (SIGHUP or file watching) succeeded and were refused since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadStats {
    /// Reloads that swapped in the new state.
    pub ok: u64,
    /// Reloads refused (the previous state stayed in force).
    pub failed: u64,
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
    usage_reporter: Option<JoinHandle<crate::usage_report::Reporter>>,
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
        if let Err(e) = self.gateway.audit.close().await {
            tracing::error!(error = %e, "audit log close failed");
        }
    }
}

impl Gateway {
    /// The current runtime (config compiled for the request path).
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn tls_data(&self) -> Arc<ServerConfig> {
        self.tls_data.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn tls_public(&self) -> Arc<ServerConfig> {
        self.tls_public.read().unwrap_or_else(|p| p.into_inner()).clone()
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
        }
    }

    fn swap_in_files(&self) -> Result<(), StartError> {
        let config = Config::load(&self.config_path)?;
        let data = listeners::data_tls(&config.listeners.data)?;
        let public = listeners::public_tls(&config.listeners.data)?;
        self.record_cert_expiry(&config);
        let runtime = Arc::new(Runtime::build(
            config,
            &self.master_key,
            self.snapshot().as_deref(),
        ));
        *self.runtime.write().unwrap_or_else(|p| p.into_inner()) = runtime;
        *self.tls_data.write().unwrap_or_else(|p| p.into_inner()) = data;
        *self.tls_public.write().unwrap_or_else(|p| p.into_inner()) = public;
        tracing::info!("configuration and certificates reloaded");
        Ok(())
    }

    fn snapshot(&self) -> Option<Arc<sluice_policy::snapshot::Snapshot>> {
        self.registry.as_ref().and_then(|r| r.current())
    }

    /// Rebuilds the runtime with a new registry snapshot (licences, measures, revoked serials)
    /// over the config in force.
    pub fn apply_snapshot(&self, snapshot: &sluice_policy::snapshot::Snapshot) {
        let _one_at_a_time = self.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let config = self.runtime().config.clone();
        let runtime = Arc::new(Runtime::build(config, &self.master_key, Some(snapshot)));
        *self.runtime.write().unwrap_or_else(|p| p.into_inner()) = runtime;
    }

    fn record_cert_expiry(&self, config: &Config) {
        let l = &config.listeners.data;
        for (name, path) in [("server", &l.cert), ("client_ca", &l.client_ca)] {
            match std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|pem| sluice_certs::days_to_expiry(&pem).map_err(|e| e.to_string()))
            {
                Ok(days) => {
                    self.metrics
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
        let audit = AuditLog::open(&config.gateway.state_dir.join("audit"), AuditOptions::default())
            .await
            .map_err(|e| StartError::Audit(e.to_string()))?;
        let limits = config.limits.clone();
        let data_listener = TcpListener::bind(config.listeners.data.addr)
            .await
            .map_err(io(format!(
                "binding data listener {}",
                config.listeners.data.addr
            )))?;
        let public_listener = match &config.listeners.public {
            Some(p) => Some(
                TcpListener::bind(p.addr)
                    .await
                    .map_err(io(format!("binding public listener {}", p.addr)))?,
            ),
            None => None,
        };
        let admin_listener = TcpListener::bind(config.listeners.admin.addr)
            .await
            .map_err(io(format!(
                "binding admin listener {}",
                config.listeners.admin.addr
            )))?;
        let local = |l: &TcpListener, what: &str| {
            l.local_addr().map_err(|source| StartError::Io {
                what: what.into(),
                source,
            })
        };
        let data_addr = local(&data_listener, "data listener address")?;
        let public_addr = public_listener
            .as_ref()
            .map(|l| local(l, "public listener address"))
            .transpose()?;
        let admin_addr = local(&admin_listener, "admin listener address")?;
        let connect_timeout = config
            .sources
            .values()
            .map(|s| s.connect_timeout_ms)
            .max()
            .unwrap_or(2_000);
        let public_limits = config
            .listeners
            .public
            .as_ref()
            .map(|p| PublicLimits::new(p.per_ip_per_second, p.per_ip_burst));
        let metrics = Arc::new(Metrics::new(config.registry.is_some()));
        let (registry, registry_client) = open_registry(&config)?;
        let shared_limits = match &config.limits.redis_url {
            Some(url) => Some(Arc::new(
                crate::limits_redis::RedisLimits::new(url, &config.limits.redis_prefix)
                    .map_err(|e| StartError::Registry(format!("limits.redis_url: {e}")))?,
            )),
            None => None,
        };
        let snapshot = registry.as_ref().and_then(|r| r.current());
        let gateway = Arc::new(Gateway {
            runtime: RwLock::new(Arc::new(Runtime::build(
                config.clone(),
                &master_key,
                snapshot.as_deref(),
            ))),
            tls_data: RwLock::new(tls_data),
            tls_public: RwLock::new(tls_public),
            config_path: config_path.to_owned(),
            master_key,
            reload_lock: Mutex::new(()),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            rate: RateLimits::default(),
            quotas: DailyQuotas::default(),
            public_limits,
            audit,
            metrics: metrics.clone(),
            upstream: UpstreamClient::new(Duration::from_millis(connect_timeout)),
            registry: registry.clone(),
            shared_limits,
            usage: config
                .registry
                .as_ref()
                .map(|_| Arc::new(crate::usage::UsageCounters::default())),
        });
        gateway.record_cert_expiry(&config);
        let (shutdown, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        {
            let gw = gateway.clone();
            let h = crate::data_plane::handler(gateway.clone(), ListenerKind::Data);
            tasks.push(tokio::spawn(serve(
                "data",
                data_listener,
                move || gw.tls_data(),
                listeners::serve_limits(&limits),
                metrics.clone(),
                rx.clone(),
                h,
            )));
        }
        if let Some(l) = public_listener {
            let gw = gateway.clone();
            let h = crate::data_plane::handler(gateway.clone(), ListenerKind::Public);
            tasks.push(tokio::spawn(serve(
                "public",
                l,
                move || gw.tls_public(),
                listeners::serve_limits(&limits),
                metrics.clone(),
                rx.clone(),
                h,
            )));
            let gw = gateway.clone();
            let mut stop = rx.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(60)) => {
                            if let Some(p) = &gw.public_limits { p.retain_recent(); }
                        }
                        _ = stop.changed() => break,
                    }
                }
            }));
        }
        if config.gateway.watch_interval_ms > 0 {
            let files =
                crate::watch::FileWatch::new(config_path, crate::watch::watched_paths(config_path, &config));
            tasks.push(tokio::spawn(crate::watch::run(
                gateway.clone(),
                files,
                Duration::from_millis(config.gateway.watch_interval_ms),
                rx.clone(),
            )));
        }
        let mut usage_reporter = None;
        if let (Some(counters), Some(r), Some((client, _))) =
            (&gateway.usage, &config.registry, &registry_client)
        {
            let reporter = crate::usage_report::Reporter::new(
                counters.clone(),
                client.clone(),
                metrics.clone(),
                &config.gateway.state_dir,
            );
            usage_reporter = Some(tokio::spawn(
                reporter.run(Duration::from_secs(r.usage_interval_s), rx.clone()),
            ));
        }
        if let (Some(reg), Some((client, wait))) = (registry, registry_client) {
            tasks.push(tokio::spawn(crate::subscription::run(
                gateway.clone(),
                reg,
                client,
                wait,
                rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(crate::admin::serve(
            admin_listener,
            gateway.clone(),
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
    loop {
        tokio::select! {
            _ = hup.recv() => {
                if let Err(e) = running.gateway.reload() {
                    tracing::error!(error = %e, "reload refused; the previous configuration stays in force");
                }
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("draining");
    running.shutdown().await;
    Ok(())
}

type RegistryParts = (
    Option<Arc<crate::subscription::Registry>>,
    Option<(sluice_net::registry_client::RegistryClient, Duration)>,
);

/// Opens the registry subscription state (loading the persisted snapshot) and its client.
fn open_registry(config: &Config) -> Result<RegistryParts, StartError> {
    let Some(r) = &config.registry else {
        return Ok((None, None));
    };
    let err = |e: &dyn std::fmt::Display| StartError::Registry(e.to_string());
    let reg = crate::subscription::Registry::open(r, &config.gateway.state_dir).map_err(|e| err(&e))?;
    let client = sluice_net::registry_client::RegistryClient::new(
        &r.url,
        &r.ca,
        Some((r.cert.as_path(), r.key.as_path())),
    )
    .map_err(|e| err(&e))?;
    Ok((
        Some(Arc::new(reg)),
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
