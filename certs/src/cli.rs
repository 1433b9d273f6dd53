//! The `sluice certs …` subcommand (clap derive). The `sluice` binary mounts
//! [`CertsCommand`] and calls [`run`].

// Field doc comments double as `--help` text, where `<CA dir>`-style placeholders are wanted.
#![allow(rustdoc::invalid_html_tags)]

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::ca::{Ca, InitOptions};
use crate::crl::RevocationReason;
use crate::error::{CertError, Result};
use crate::issue::{self, IssueGateway, IssuedCert, DEFAULT_LEAF_DAYS};
use crate::keys::KeyAlgorithm;
use crate::{store, util};

/// Default CA folder.
pub const DEFAULT_CA_DIR: &str = "./state/ca";

/// The CA folder option shared by the subcommands.
#[derive(Debug, Clone, clap::Args)]
pub struct CaDir {
    /// CA folder.
    #[arg(long = "dir", env = "SLUICE_CA_DIR", default_value = DEFAULT_CA_DIR)]
    pub dir: PathBuf,
}

/// Where to write an issued certificate.
#[derive(Debug, Clone, clap::Args)]
pub struct Output {
    /// Output folder [default: <CA dir>/issued].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// File base name: writes <NAME>.pem, <NAME>.key (0600) and <NAME>.chain.pem [default: <kind>-<id>].
    #[arg(long)]
    pub name: Option<String>,
}

/// `sluice certs …`: manage the sluice certificate authority.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum CertsCommand {
    /// Create a CA folder: a root CA, or with --intermediate-of an intermediate signed by a root.
    InitCa {
        #[command(flatten)]
        dir: CaDir,
        /// Key algorithm of the CA and of the certificates it issues.
        #[arg(long, value_enum, default_value_t = KeyAlgorithm::EcP256)]
        algorithm: KeyAlgorithm,
        /// Common name of the CA certificate [default: "sluice root CA" or "sluice intermediate CA"].
        #[arg(long)]
        cn: Option<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
        /// Folder of the root CA that signs this new intermediate CA.
        #[arg(long, value_name = "ROOT_DIR")]
        intermediate_of: Option<PathBuf>,
    },
    /// Issue a certificate.
    Issue {
        /// What to issue.
        #[command(subcommand)]
        what: IssueCommand,
    },
    /// Issue a new key and certificate with the same identity as an existing certificate
    /// (replaces the <kind>-<id> files in the output folder: that is the rotation).
    Renew {
        #[command(flatten)]
        dir: CaDir,
        /// The certificate to renew (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = DEFAULT_LEAF_DAYS)]
        days: u32,
        #[command(flatten)]
        output: Output,
    },
    /// Record a revocation in the CA index (publish it with `crl`).
    Revoke {
        #[command(flatten)]
        dir: CaDir,
        /// Serial number in hex (as printed by `list`, `issue` or `inspect`).
        #[arg(long)]
        serial: String,
        /// Reason for the revocation.
        #[arg(long, value_enum, default_value_t = RevocationReason::Unspecified)]
        reason: RevocationReason,
    },
    /// Write a signed CRL listing every revoked certificate.
    Crl {
        #[command(flatten)]
        dir: CaDir,
        /// Hours until the CRL's nextUpdate.
        #[arg(long, default_value_t = 168)]
        next_update_hours: u32,
        /// Output file [default: <CA dir>/crl.pem].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List the certificates the CA has issued.
    List {
        #[command(flatten)]
        dir: CaDir,
    },
    /// Describe a certificate (or chain) file and the sluice identity it carries.
    Inspect {
        /// PEM file.
        file: PathBuf,
    },
}

/// `sluice certs issue …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum IssueCommand {
    /// A gateway TLS server certificate.
    Gateway {
        #[command(flatten)]
        dir: CaDir,
        /// DNS name (repeatable).
        #[arg(long)]
        dns: Vec<String>,
        /// IP address (repeatable).
        #[arg(long)]
        ip: Vec<IpAddr>,
        /// Validity in days.
        #[arg(long, default_value_t = DEFAULT_LEAF_DAYS)]
        days: u32,
        #[command(flatten)]
        output: Output,
        /// Replace existing output files.
        #[arg(long)]
        force: bool,
    },
    /// A licensee client certificate (urn:sluice:licensee:<ID>).
    Licensee {
        #[command(flatten)]
        dir: CaDir,
        /// Licensee id, [A-Za-z0-9._-]{1,64}.
        #[arg(long)]
        id: String,
        /// Validity in days.
        #[arg(long, default_value_t = DEFAULT_LEAF_DAYS)]
        days: u32,
        #[command(flatten)]
        output: Output,
        /// Replace existing output files.
        #[arg(long)]
        force: bool,
    },
    /// An administrator client certificate (urn:sluice:admin:<NAME>).
    Admin {
        #[command(flatten)]
        dir: CaDir,
        /// Administrator name, [A-Za-z0-9._-]{1,64}.
        #[arg(long = "name")]
        admin: String,
        /// Validity in days.
        #[arg(long, default_value_t = DEFAULT_LEAF_DAYS)]
        days: u32,
        /// Output folder [default: <CA dir>/issued].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace existing output files.
        #[arg(long)]
        force: bool,
    },
    /// A gateway's client certificate towards the registry (urn:sluice:gateway:<ID>).
    GatewayClient {
        #[command(flatten)]
        dir: CaDir,
        /// Gateway id, [A-Za-z0-9._-]{1,64}.
        #[arg(long)]
        id: String,
        /// Validity in days.
        #[arg(long, default_value_t = DEFAULT_LEAF_DAYS)]
        days: u32,
        #[command(flatten)]
        output: Output,
        /// Replace existing output files.
        #[arg(long)]
        force: bool,
    },
}

/// Runs a `sluice certs` subcommand, printing what it did on standard output.
pub fn run(cmd: CertsCommand) -> Result<()> {
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    run_with_output(cmd, &mut lock)
}

/// Runs a `sluice certs` subcommand, printing what it did to `out`.
pub fn run_with_output(cmd: CertsCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        CertsCommand::InitCa {
            dir,
            algorithm,
            cn,
            days,
            intermediate_of,
        } => {
            let ca = match intermediate_of {
                Some(root_dir) => {
                    let root = Ca::open(&root_dir)?;
                    let common_name = cn.unwrap_or_else(|| "sluice intermediate CA".to_string());
                    Ca::init_intermediate(
                        &root,
                        &dir.dir,
                        InitOptions {
                            algorithm,
                            common_name,
                            days,
                        },
                    )?
                }
                None => {
                    let common_name = cn.unwrap_or_else(|| "sluice root CA".to_string());
                    Ca::init(
                        &dir.dir,
                        InitOptions {
                            algorithm,
                            common_name,
                            days,
                        },
                    )?
                }
            };
            let kind = if ca.is_intermediate() {
                "intermediate"
            } else {
                "root"
            };
            say(
                out,
                format_args!("created {kind} CA {} ({algorithm})", ca.dir().display()),
            )?;
            for f in [store::CA_KEY_FILE, store::CA_CERT_FILE, store::ROOT_CERT_FILE] {
                say(out, format_args!("  wrote {}", ca.dir().join(f).display()))?;
            }
            if ca.is_intermediate() {
                say(
                    out,
                    format_args!("  wrote {}", ca.dir().join(store::CA_CHAIN_FILE).display()),
                )?;
            }
            say(
                out,
                format_args!(
                    "trust anchor for gateways and the registry: {}",
                    ca.dir().join(store::ROOT_CERT_FILE).display()
                ),
            )
        }
        CertsCommand::Issue { what } => run_issue(what, out),
        CertsCommand::Renew {
            dir,
            cert,
            days,
            output,
        } => {
            let ca = Ca::open(&dir.dir)?;
            let pem = String::from_utf8_lossy(&util::read(&cert)?).into_owned();
            let issued = issue::renew(&ca, &pem, days)?;
            let target = Target::new(&ca, output, &default_basename(&issued)?, true)?;
            target.write(out, &issued)?;
            say(
                out,
                format_args!(
                    "the old certificate stays valid; revoke it with --reason superseded once replaced"
                ),
            )
        }
        CertsCommand::Revoke { dir, serial, reason } => {
            let ca = Ca::open(&dir.dir)?;
            let serial = crate::crl::revoke(&ca, &serial, reason)?;
            say(
                out,
                format_args!("revoked {serial} ({reason}); publish it with `sluice certs crl`"),
            )
        }
        CertsCommand::Crl {
            dir,
            next_update_hours,
            out: file,
        } => {
            let ca = Ca::open(&dir.dir)?;
            let pem = crate::crl::crl(&ca, next_update_hours)?;
            let file = file.unwrap_or_else(|| ca.dir().join(store::CRL_FILE));
            if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                util::create_dir(parent)?;
            }
            util::write_atomic(&file, pem.as_bytes(), 0o644)?;
            let revoked = ca.index()?.iter().filter(|e| e.revoked.is_some()).count();
            say(
                out,
                format_args!("wrote {} ({revoked} revoked certificates)", file.display()),
            )
        }
        CertsCommand::List { dir } => {
            let ca = Ca::open(&dir.dir)?;
            say(
                out,
                format_args!(
                    "{:<34} {:<15} {:<40} {:<20} status",
                    "serial", "kind", "identity", "not after"
                ),
            )?;
            let now = util::now_unix();
            for e in ca.index()? {
                let status = match &e.revoked {
                    Some(r) => format!("revoked ({}, {})", r.reason, util::rfc3339(r.revoked_at)),
                    None if e.not_after < now => "expired".to_string(),
                    None => "valid".to_string(),
                };
                let ident = e.identity.clone().unwrap_or_else(|| e.sans.join(","));
                say(
                    out,
                    format_args!(
                        "{:<34} {:<15} {:<40} {:<20} {status}",
                        e.serial,
                        e.kind.to_string(),
                        ident,
                        util::rfc3339(e.not_after)
                    ),
                )?;
            }
            Ok(())
        }
        CertsCommand::Inspect { file } => {
            let pem = String::from_utf8_lossy(&util::read(&file)?).into_owned();
            let text = crate::inspect::inspect(&pem)?;
            out.write_all(text.as_bytes())
                .map_err(|e| CertError::io("<stdout>", e))
        }
    }
}

fn run_issue(what: IssueCommand, out: &mut dyn Write) -> Result<()> {
    match what {
        IssueCommand::Gateway {
            dir,
            dns,
            ip,
            days,
            output,
            force,
        } => {
            let ca = Ca::open(&dir.dir)?;
            let first = dns.first().cloned().or_else(|| ip.first().map(|i| i.to_string()));
            let default = format!("gateway-{}", safe_file_part(first.as_deref().unwrap_or("server")));
            let target = Target::new(&ca, output, &default, force)?;
            let issued = issue::issue_gateway(&ca, IssueGateway { dns, ips: ip, days })?;
            target.write(out, &issued)
        }
        IssueCommand::Licensee {
            dir,
            id,
            days,
            output,
            force,
        } => {
            let ca = Ca::open(&dir.dir)?;
            crate::identity::validate_id(&id)?;
            let target = Target::new(&ca, output, &format!("licensee-{id}"), force)?;
            let issued = issue::issue_licensee(&ca, &id, days)?;
            target.write(out, &issued)
        }
        IssueCommand::Admin {
            dir,
            admin,
            days,
            out: folder,
            force,
        } => {
            let ca = Ca::open(&dir.dir)?;
            crate::identity::validate_id(&admin)?;
            let output = Output {
                out: folder,
                name: None,
            };
            let target = Target::new(&ca, output, &format!("admin-{admin}"), force)?;
            let issued = issue::issue_admin(&ca, &admin, days)?;
            target.write(out, &issued)
        }
        IssueCommand::GatewayClient {
            dir,
            id,
            days,
            output,
            force,
        } => {
            let ca = Ca::open(&dir.dir)?;
            crate::identity::validate_id(&id)?;
            let target = Target::new(&ca, output, &format!("gateway-client-{id}"), force)?;
            let issued = issue::issue_gateway_client(&ca, &id, days)?;
            target.write(out, &issued)
        }
    }
}

/// Where an issued certificate goes, decided (and checked) before issuing.
struct Target {
    folder: PathBuf,
    name: String,
}

impl Target {
    /// Resolves the folder and base name; unless `force`, refuses when the files exist.
    fn new(ca: &Ca, output: Output, default_name: &str, force: bool) -> Result<Target> {
        let folder = output.out.unwrap_or_else(|| ca.dir().join(store::ISSUED_DIR));
        let name = output.name.unwrap_or_else(|| default_name.to_string());
        if !force {
            for ext in ["pem", "key", "chain.pem"] {
                let p = folder.join(format!("{name}.{ext}"));
                if p.exists() {
                    return Err(CertError::AlreadyExists(p));
                }
            }
        }
        Ok(Target { folder, name })
    }

    fn write(&self, out: &mut dyn Write, issued: &IssuedCert) -> Result<()> {
        let files = issued.write_to(&self.folder, &self.name)?;
        say(
            out,
            format_args!(
                "issued {} certificate, serial {}, valid until {}",
                issued.kind,
                issued.serial_hex,
                util::rfc3339(issued.not_after)
            ),
        )?;
        say(out, format_args!("  wrote {}", files.cert.display()))?;
        say(
            out,
            format_args!("  wrote {} (private key, mode 0600)", files.key.display()),
        )?;
        if let Some(chain) = &files.chain {
            say(
                out,
                format_args!("  wrote {} (certificate + intermediate)", chain.display()),
            )?;
        }
        Ok(())
    }
}

fn safe_file_part(s: &str) -> String {
    let safe: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    safe.trim_start_matches('.').to_string()
}

/// `<kind>-<id>` for identity certificates, `gateway-<first name>` for gateway servers.
fn default_basename(issued: &IssuedCert) -> Result<String> {
    if let Ok(id) = crate::identity::identity_from_pem(issued.cert_pem.as_bytes()) {
        let prefix = match id.kind {
            crate::IdentityKind::Licensee => "licensee",
            crate::IdentityKind::Admin => "admin",
            crate::IdentityKind::Gateway => "gateway-client",
        };
        return Ok(format!("{prefix}-{}", id.id));
    }
    let cert = openssl::x509::X509::from_pem(issued.cert_pem.as_bytes())?;
    let first = crate::inspect::render_sans(&cert)
        .into_iter()
        .next()
        .map(|s| s.split_once(':').map(|(_, v)| v.to_string()).unwrap_or(s))
        .unwrap_or_else(|| "server".to_string());
    Ok(format!("gateway-{}", safe_file_part(&first)))
}

fn say(out: &mut dyn Write, args: std::fmt::Arguments<'_>) -> Result<()> {
    writeln!(out, "{args}").map_err(|e| CertError::io(Path::new("<stdout>"), e))
}
