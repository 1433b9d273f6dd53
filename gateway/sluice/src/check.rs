//! `sluice check`: validates a gateway's or the registry's config as the server would at
//! start (TLS material included), without binding a port or opening a database, like
//! `nginx -t`.

use std::path::Path;
use std::process::ExitCode;

/// What a config file configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConfigKind {
    /// An agency gateway (`sluice gateway --config`).
    Gateway,
    /// The registry (`sluice registry --config`).
    Registry,
}

impl std::fmt::Display for ConfigKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConfigKind::Gateway => "gateway",
            ConfigKind::Registry => "registry",
        })
    }
}

/// Top-level keys only a gateway config has.
const GATEWAY_KEYS: &[&str] = &[
    "gateway",
    "listeners",
    "datasets",
    "sources",
    "licences_file",
    "licences",
    "closed_datasets",
    "limits",
    "classification",
];
/// Keys of `[registry]` only the registry's own config has (a gateway's `[registry]` says
/// where the registry is: `url`, `ca`, `public_key`, …).
const REGISTRY_ONLY_KEYS: &[&str] = &[
    "addr",
    "client_ca",
    "state_dir",
    "database_url",
    "signing_key",
    "crl",
];
/// Keys of `[registry]` only a gateway config has.
const GATEWAY_REGISTRY_KEYS: &[&str] = &[
    "url",
    "ca",
    "public_key",
    "staleness_bound_s",
    "poll_wait_s",
    "usage_interval_s",
];

/// Tells a gateway config from a registry config by its tables; the reason is for messages.
fn guess_kind(text: &str) -> Result<(ConfigKind, String), String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    if let Some(k) = ["gateway", "listeners"]
        .into_iter()
        .find(|k| table.contains_key(*k))
    {
        return Ok((ConfigKind::Gateway, format!("it has [{k}]")));
    }
    if let Some(toml::Value::Table(r)) = table.get("registry") {
        let own = REGISTRY_ONLY_KEYS.iter().find(|k| r.contains_key(**k));
        let gateway_side = GATEWAY_REGISTRY_KEYS.iter().find(|k| r.contains_key(**k));
        return Ok(match (own, gateway_side) {
            (None, Some(k)) => (
                ConfigKind::Gateway,
                format!("its [registry] has `{k}`, as a gateway's does"),
            ),
            (Some(k), _) => (ConfigKind::Registry, format!("it has [registry] with `{k}`")),
            (None, None) => (
                ConfigKind::Registry,
                "it has [registry] and no [gateway]".to_owned(),
            ),
        });
    }
    if let Some(k) = GATEWAY_KEYS.iter().find(|k| table.contains_key(**k)) {
        return Ok((ConfigKind::Gateway, format!("it has `{k}`")));
    }
    Err(
        "cannot tell whether this is a gateway config ([gateway], [listeners.data], \
         [[datasets]], …) or a registry config ([registry] with addr, cert, key, client_ca, \
         state_dir); pass --kind gateway or --kind registry"
            .to_owned(),
    )
}

/// `sluice check`: loads and validates a config as the server would at start (TLS material
/// included), without binding a port or opening a database; prints what failed, each value by
/// its path.
///
/// With `connect`, a gateway's sources are also reached: each connects and reads one record
/// of every declared column, and every catalog field of a SQL source's dataset must be one of
/// its declared columns (else it could never appear).
pub fn check(path: &Path, kind: Option<ConfigKind>, connect: bool) -> ExitCode {
    let failed = || {
        eprintln!("{}: configuration test failed", path.display());
        ExitCode::FAILURE
    };
    let (kind, why) = match kind {
        Some(k) => (k, None),
        None => {
            let guessed = std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|text| guess_kind(&text));
            match guessed {
                Ok((k, why)) => (k, Some(why)),
                Err(e) => {
                    eprintln!("{}: {e}", path.display());
                    return failed();
                }
            }
        }
    };
    let outcome = match kind {
        ConfigKind::Gateway => check_gateway(path, connect),
        ConfigKind::Registry => check_registry(path),
    };
    match outcome {
        Ok(summary) => {
            println!("{}: ok ({summary})", path.display());
            ExitCode::SUCCESS
        }
        Err(problems) => {
            eprintln!("{problems}");
            match why {
                Some(why) => {
                    let other = match kind {
                        ConfigKind::Gateway => ConfigKind::Registry,
                        ConfigKind::Registry => ConfigKind::Gateway,
                    };
                    eprintln!(
                        "{}: checked as a {kind} config ({why}); if it is a {other} config, \
                         pass --kind {other}",
                        path.display()
                    );
                }
                None => eprintln!("{}: checked as a {kind} config (--kind {kind})", path.display()),
            }
            failed()
        }
    }
}

/// A gateway config: `Config::load` (every value, by path) and the data listener's TLS config.
fn check_gateway(path: &Path, connect: bool) -> Result<String, String> {
    let cfg = sluice_agency::config::Config::load(path).map_err(|e| e.to_string())?;
    sluice_net::tls::install_provider();
    sluice_agency::listeners::data_tls(&cfg.listeners.data).map_err(|e| format!("listeners.data: {e}"))?;
    let mut summary = format!("{} datasets, {} licences", cfg.datasets.len(), cfg.licences.len());
    // Where each source credential comes from (never its value).
    let credentials: Vec<String> = cfg
        .sources
        .iter()
        .flat_map(|(id, source)| {
            source
                .credentials()
                .into_iter()
                .map(move |(what, origin)| format!("{id} {what} from {origin}"))
        })
        .collect();
    if !credentials.is_empty() {
        summary.push_str("; source credentials: ");
        summary.push_str(&credentials.join(", "));
    }
    if connect {
        summary.push_str("; ");
        summary.push_str(&connect_sources(&cfg)?);
    }
    for w in key_warnings(&cfg) {
        eprintln!("{}: warning: {w}", path.display());
    }
    Ok(summary)
}

/// A SQL source orders every page by its key: a licence that does not show the key in clear
/// still sees the key's order (of an identity number, say). Warned, not refused: the key may
/// be a meaningless row number.
fn key_warnings(cfg: &sluice_agency::config::Config) -> Vec<String> {
    let mut out = Vec::new();
    for (id, source) in &cfg.sources {
        let Some(table) = source.table() else { continue };
        for l in cfg.licences.iter().filter(|l| l.dataset == *id) {
            if !matches!(
                l.fields.get(&table.key),
                Some(sluice_policy::mask::MaskRule::Clear)
            ) {
                out.push(format!(
                    "licence {} does not show {id}'s key column {:?} in clear, but pages are ordered by it: \
                     the order reveals the key's order; use a key that is not personal data",
                    l.id, table.key
                ));
            }
        }
    }
    out.sort();
    out
}

/// Reaches every source of a gateway config (`--connect`): what each said, or every problem
/// by path.
fn connect_sources(cfg: &sluice_agency::config::Config) -> Result<String, String> {
    let mut problems = Vec::new();
    // Catalog fields a SQL source does not declare would never appear: say so.
    for (id, source) in &cfg.sources {
        let (Some(table), Some(dataset)) = (source.table(), cfg.datasets.iter().find(|d| d.id == *id)) else {
            continue;
        };
        for f in &dataset.fields {
            if !table.columns.contains_key(&f.name) {
                problems.push(format!(
                    "sources.{id}.table.columns: the dataset's field {:?} is not a declared column of {:?}",
                    f.name, table.name
                ));
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let shared = sluice_connectors::Shared::for_sources(cfg.sources.values());
    let mut sources: Vec<_> = cfg.sources.iter().collect();
    sources.sort_by(|a, b| a.0.cmp(b.0));
    let results = runtime.block_on(async {
        let checks = sources.iter().map(|(id, config)| {
            let connector = sluice_connectors::connect(config, &shared);
            async move {
                let r = tokio::time::timeout(std::time::Duration::from_secs(30), connector.check())
                    .await
                    .unwrap_or_else(|_| Err("no answer within 30 s".into()));
                (id.to_string(), config.kind(), r)
            }
        });
        futures_util::future::join_all(checks).await
    });
    let mut reached = Vec::new();
    for (id, kind, r) in results {
        match r {
            Ok(what) => reached.push(format!("{id} ({kind}): {what}")),
            Err(e) => problems.push(format!("sources.{id} ({kind}): {e}")),
        }
    }
    if problems.is_empty() {
        Ok(format!("sources reached: {}", reached.join(", ")))
    } else {
        Err(problems.join("\n"))
    }
}

/// A registry config, as `sluice_registry::start` reads it: the file, the TLS server config
/// (client certificates optional, verified against `client_ca` and the CRL), the state folder,
/// an existing signing key and the database URL's scheme. Nothing is created or opened.
fn check_registry(path: &Path) -> Result<String, String> {
    use sluice_net::tls::{self, ClientAuth, TlsError};
    let cfg = sluice_registry::config::RegistryConfig::load(path).map_err(|e| e.to_string())?;
    tls::install_provider();
    let mut problems = Vec::new();
    if let Err(e) = tls::load_certs(&cfg.cert) {
        problems.push(format!("registry.cert: {e}"));
    }
    if let Err(e) = tls::load_key(&cfg.key) {
        problems.push(format!("registry.key: {e}"));
    }
    if let Err(e) = tls::load_certs(&cfg.client_ca) {
        problems.push(format!("registry.client_ca: {e}"));
    }
    if problems.is_empty() {
        let auth = ClientAuth::Optional {
            ca: &cfg.client_ca,
            crl: cfg.crl.as_deref(),
        };
        if let Err(e) = tls::server_config(&cfg.cert, &cfg.key, auth) {
            let field = match &e {
                TlsError::File { path, .. } if Some(path) == cfg.crl.as_ref() => "registry.crl",
                TlsError::File { path, .. } if *path == cfg.client_ca => "registry.client_ca",
                TlsError::File { path, .. } if *path == cfg.key => "registry.key",
                TlsError::File { path, .. } if *path == cfg.cert => "registry.cert",
                _ => "registry.cert, registry.key",
            };
            problems.push(format!("{field}: {e}"));
        }
    }
    if cfg.state_dir.exists() && !cfg.state_dir.is_dir() {
        problems.push(format!(
            "registry.state_dir: {}: not a folder",
            cfg.state_dir.display()
        ));
    }
    let key = cfg.signing_key_path();
    if key.exists() {
        // Only read: load_or_create makes a key only when the file is missing.
        if let Err(e) = sluice_registry::keys::load_or_create(&key) {
            let field = if cfg.signing_key.is_some() {
                "registry.signing_key"
            } else {
                "registry.state_dir (signing.key)"
            };
            problems.push(format!("{field}: {e}"));
        }
    }
    let database = match cfg.database_url.as_deref() {
        None => format!("SQLite in {}", cfg.state_dir.display()),
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => "PostgreSQL".to_owned(),
        Some(u) if u.starts_with("sqlite:") => "SQLite".to_owned(),
        Some(_) => {
            problems.push("registry.database_url: expected postgres://… or sqlite:…".to_owned());
            String::new()
        }
    };
    if problems.is_empty() {
        Ok(format!("registry on {}, {database}", cfg.addr))
    } else {
        Err(problems.join("\n"))
    }
}
