//! The `sluice` binary: one binary, a subcommand per role.

use clap::{Parser, Subcommand};
use sluice::check::{check, ConfigKind};
use std::path::PathBuf;
use std::process::ExitCode;

/// jemalloc, purging freed memory in background threads (returned to the OS after bursts).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// sluice: a federated data-exchange gateway.
#[derive(Parser)]
#[command(name = "sluice", version, about)]
struct Cli {
    /// Log as JSON lines.
    #[arg(long, global = true, env = "SLUICE_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an agency gateway (SIGHUP reloads, SIGTERM drains).
    Gateway {
        /// Config file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a gateway or registry config file and exit (like `nginx -t`).
    Check {
        /// Config file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// What the file configures; told from its tables when not given.
        #[arg(long, value_enum)]
        kind: Option<ConfigKind>,
        /// Also reach a gateway's sources: connect, read one record of every declared column.
        #[arg(long)]
        connect: bool,
    },
    /// Run a whole demo federation on this machine until interrupted.
    Demo {
        /// Folder for the demo's CA, certificates, config and state (recreated).
        #[arg(long, default_value = "sluice-demo")]
        dir: PathBuf,
    },
    /// Serve one of the demo's sample agency sources over plain HTTP.
    SampleSource {
        /// Address to bind.
        #[arg(long, default_value = "127.0.0.1:9000")]
        addr: std::net::SocketAddr,
        /// `hydrants` (the fire-hydrant register) or `utilities` (enterprise water and
        /// electricity use).
        #[arg(long, default_value = "hydrants", value_parser = ["hydrants", "utilities"])]
        register: String,
    },
    /// Read and verify the audit log.
    #[command(subcommand)]
    Audit(sluice::audit_cli::AuditCommand),
    /// Run the certificate authority: CA, certificates, CRLs.
    #[command(subcommand)]
    Certs(sluice_certs::cli::CertsCommand),
    /// Run the registry (licence authority): admin API, signed snapshots, public pages.
    Registry {
        /// Config file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Administer the registry over its HTTPS API with an admin certificate.
    Admin(Box<sluice::admin::AdminArgs>),
    /// Name the licensee a leaked copy of a dataset came from, from its fingerprint marks
    /// (exit 3: cannot tell).
    Trace(sluice::trace_cli::TraceArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_json);
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Gateway { config } => {
            runtime()?.block_on(sluice_agency::gateway::run(&config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            config,
            kind,
            connect,
        } => Ok(check(&config, kind, connect)),
        Command::Demo { dir } => {
            runtime()?.block_on(sluice::demo::run(&dir))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::SampleSource { addr, register } => {
            use sluice::demo::source::SampleSource;
            runtime()?.block_on(async {
                let src = if register == "utilities" {
                    SampleSource::start_utilities(addr).await?
                } else {
                    SampleSource::start(addr).await?
                };
                println!("sample source on {}", src.url());
                tokio::signal::ctrl_c().await?;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(cmd) => sluice::audit_cli::run(cmd),
        Command::Trace(args) => sluice::trace_cli::run(args),
        Command::Registry { config } => {
            runtime()?.block_on(sluice_registry::run(&config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin(args) => runtime()?.block_on(sluice::admin::run(*args)),
        Command::Certs(cmd) => {
            sluice_certs::cli::run(cmd)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    /// Every subcommand's arguments are well formed (unique names, valid defaults): clap
    /// checks them when a command runs; this checks all of them at once.
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
