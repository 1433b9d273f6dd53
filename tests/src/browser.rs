//! Real Chromium for end-to-end tests: Debian's `chromium` driven through `chromedriver`
//! (WebDriver, via [`fantoccini`]), headless, logging in to the registry's console over mutual
//! TLS with an administrator's client certificate.
//!
//! How the certificate reaches Chromium without a dialog:
//!
//! * Every [`Browser`] gets its own temporary `HOME`; Chromium on Linux keeps trust settings
//!   and client identities in the NSS database `$HOME/.pki/nssdb`. [`Browser::launch`] creates
//!   it with `certutil`, adds the test CA as trusted for TLS servers (`-t "C,,"`), and imports
//!   the admin certificate and key as PKCS#12 with `pk12util`. `chromedriver` runs with that
//!   `HOME` and Chromium inherits it.
//! * Chromium reads managed policies from [`POLICY_DIR`]. The `AutoSelectCertificateForUrls`
//!   policy, with the patterns in [`AUTO_SELECT_PATTERNS`] (any port of `https://127.0.0.1`
//!   and `https://localhost`) and an empty filter, makes it present the (only) identity in
//!   its NSS database when a loopback server asks for a client certificate. Writing there needs
//!   root (CI runs as root); [`Browser::launch`] says so clearly otherwise.
//!
//! Policy files: one per browser, `sluice-tests-<pid>-<n>.json`, removed when the browser is
//! closed or dropped, so parallel test binaries (and parallel tests in one binary) never
//! remove each other's file; all carry the same value, so while several exist Chromium sees one
//! consistent policy. Files left by a test process that was killed (its pid gone) are removed
//! at the next launch.
//!
//! Processes: `chromedriver` listens on a free loopback port and runs in its own process group
//! with Chromium; closing or dropping the [`Browser`] kills the whole group (Chromium outlives
//! a killed `chromedriver` otherwise).
//!
//! The skip convention of the browser tests is [`skip_without_browser`].

use fantoccini::wd::Capabilities;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where Chromium on Debian reads managed (mandatory) policies.
pub const POLICY_DIR: &str = "/etc/chromium/policies/managed";

/// `AutoSelectCertificateForUrls` patterns: HTTPS on loopback, any port.
pub const AUTO_SELECT_PATTERNS: [&str; 2] = ["https://127.0.0.1:*", "https://localhost:*"];

/// The commands [`Browser::launch`] runs, with the Debian package of each.
const TOOLS: [(&str, &str); 4] = [
    ("chromium", "chromium"),
    ("chromedriver", "chromium-driver"),
    ("certutil", "libnss3-tools"),
    ("pk12util", "libnss3-tools"),
];

/// Name of the client identity in the NSS database.
const IDENTITY: &str = "sluice-admin";

/// How long chromedriver may take to answer `/status`, and Chromium to start a session.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Numbers the browsers of this process (policy file names).
static LAUNCHED: AtomicUsize = AtomicUsize::new(0);

/// `target/screenshots/` (beside the test binary's `target/<profile>/deps/`), created if need
/// be: where browser tests keep their artefacts.
pub fn screenshots_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A command found on `PATH`.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The commands [`Browser::launch`] needs that are not installed, each with its Debian
/// package, e.g. `"chromedriver (apt-get install -y chromium-driver)"`; empty when all are.
pub fn missing_tools() -> Vec<String> {
    TOOLS
        .iter()
        .filter(|(cmd, _)| which(cmd).is_none())
        .map(|(cmd, pkg)| format!("{cmd} (apt-get install -y {pkg})"))
        .collect()
}

/// The skip convention of browser tests: `true` (after a loud message on stderr) when a tool
/// [`Browser::launch`] needs is missing, so the test returns early; panics instead when
/// `SLUICE_REQUIRE_CHROMIUM` is set (`.ci/run` sets it, and installs them). `false` when all
/// are installed.
pub fn skip_without_browser(test: &str) -> bool {
    let missing = missing_tools();
    if missing.is_empty() {
        return false;
    }
    let missing = missing.join(", ");
    if std::env::var_os("SLUICE_REQUIRE_CHROMIUM").is_some() {
        panic!("SLUICE_REQUIRE_CHROMIUM is set and {test} needs: {missing}");
    }
    eprintln!(
        "\n!!!!!!!!!! SKIPPED {test}: missing {missing} \
         (set SLUICE_REQUIRE_CHROMIUM=1 to make this a failure) !!!!!!!!!!\n"
    );
    true
}

/// Headless Chromium under chromedriver, presenting an admin certificate to loopback servers.
pub struct Browser {
    /// The WebDriver session.
    pub client: fantoccini::Client,
    // Dropped in this order: the session, the processes, the policy file, the HOME folder.
    driver: Driver,
    policy: PolicyFile,
    home: tempfile::TempDir,
}

/// chromedriver, leader of a process group that Chromium joins; killed on drop.
struct Driver {
    child: tokio::process::Child,
    group: Option<rustix::process::Pid>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(group) = self.group {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.child.start_kill();
    }
}

/// A policy file of ours in [`POLICY_DIR`]; removed on drop.
struct PolicyFile(PathBuf);

impl Drop for PolicyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Browser {
    /// Starts chromedriver and headless Chromium whose NSS database trusts `ca_pem` for TLS
    /// servers and holds the certificate `cert_pem` (a PEM leaf, optionally followed by its
    /// chain) with its key `key_pem`, under the `AutoSelectCertificateForUrls` policy so that
    /// Chromium presents it to `https://127.0.0.1:<any port>` (and `localhost`) without a
    /// dialog. Errors say which step failed, with the tool's output.
    pub async fn launch(ca_pem: &Path, cert_pem: &Path, key_pem: &Path) -> Result<Browser, String> {
        let missing = missing_tools();
        if !missing.is_empty() {
            return Err(format!("missing {}", missing.join(", ")));
        }
        let home = tempfile::Builder::new()
            .prefix("sluice-browser-")
            .tempdir()
            .map_err(|e| format!("temporary HOME: {e}"))?;
        nss_database(home.path(), ca_pem, cert_pem, key_pem).await?;
        let policy = write_policy()?;
        let (driver, port) = start_chromedriver(home.path()).await?;
        let client = tokio::time::timeout(START_TIMEOUT, session(port, home.path()))
            .await
            .map_err(|_| {
                format!(
                    "no WebDriver session in {START_TIMEOUT:?}; chromedriver log:\n{}",
                    log_tail(home.path())
                )
            })??;
        Ok(Browser {
            client,
            driver,
            policy,
            home,
        })
    }

    /// Saves a PNG screenshot of the current page as `<name>.png` in [`screenshots_dir`]
    /// (characters other than ASCII letters, digits, `-`, `_` and `.` become `-`); returns its
    /// path. Panics when Chromium cannot take it.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let png = self.client.screenshot().await.expect("WebDriver screenshot");
        let path = screenshots_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Ends the session (chromedriver quits Chromium), then kills what is left of the process
    /// group, removes the policy file and the temporary HOME.
    pub async fn close(self) {
        let Browser {
            client,
            driver,
            policy,
            home,
        } = self;
        let _ = tokio::time::timeout(Duration::from_secs(20), client.close()).await;
        drop(driver);
        drop(policy);
        drop(home);
    }
}

/// Runs a tool to completion (stdin closed, at most a minute); its output when it fails.
async fn run(program: &str, args: &[&std::ffi::OsStr]) -> Result<(), String> {
    let what = format!(
        "{program} {}",
        args.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .map_err(|_| format!("`{what}` took over a minute"))?
        .map_err(|e| format!("`{what}`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{what}` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Creates `$HOME/.pki/nssdb` (no password) trusting `ca_pem` for TLS servers and holding the
/// identity `cert_pem` + `key_pem`.
async fn nss_database(home: &Path, ca_pem: &Path, cert_pem: &Path, key_pem: &Path) -> Result<(), String> {
    let db = home.join(".pki").join("nssdb");
    std::fs::create_dir_all(&db).map_err(|e| format!("{}: {e}", db.display()))?;
    let db = format!("sql:{}", db.display());
    let db = std::ffi::OsStr::new(&db);
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    run("certutil", &[os("-N"), os("-d"), db, os("--empty-password")]).await?;
    run(
        "certutil",
        &[
            os("-A"),
            os("-d"),
            db,
            os("-n"),
            os("sluice test CA"),
            os("-t"),
            os("C,,"),
            os("-a"),
            os("-i"),
            ca_pem.as_os_str(),
        ],
    )
    .await?;
    let password = "sluice";
    let p12 = home.join("identity.p12");
    std::fs::write(&p12, pkcs12(cert_pem, key_pem, password)?)
        .map_err(|e| format!("{}: {e}", p12.display()))?;
    let w = format!("-W{password}");
    run(
        "pk12util",
        &[
            os("-i"),
            p12.as_os_str(),
            os("-d"),
            db,
            std::ffi::OsStr::new(&w),
            os("-K"),
            os(""),
        ],
    )
    .await?;
    std::fs::remove_file(&p12).map_err(|e| format!("{}: {e}", p12.display()))
}

/// The PEM certificate (leaf first, then any chain) and key as PKCS#12 under `password`.
fn pkcs12(cert_pem: &Path, key_pem: &Path, password: &str) -> Result<Vec<u8>, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut certs = openssl::x509::X509::stack_from_pem(&read(cert_pem)?)
        .map_err(|e| format!("{}: {e}", cert_pem.display()))?
        .into_iter();
    let leaf = certs
        .next()
        .ok_or_else(|| format!("{}: no certificate", cert_pem.display()))?;
    let key = openssl::pkey::PKey::private_key_from_pem(&read(key_pem)?)
        .map_err(|e| format!("{}: {e}", key_pem.display()))?;
    let mut builder = openssl::pkcs12::Pkcs12::builder();
    builder.name(IDENTITY).pkey(&key).cert(&leaf);
    let mut chain = openssl::stack::Stack::new().map_err(|e| e.to_string())?;
    for c in certs {
        chain.push(c).map_err(|e| e.to_string())?;
    }
    if !chain.is_empty() {
        builder.ca(chain);
    }
    builder
        .build2(password)
        .and_then(|p| p.to_der())
        .map_err(|e| format!("PKCS#12 of {}: {e}", cert_pem.display()))
}

/// Writes this browser's `AutoSelectCertificateForUrls` policy file, after removing those of
/// test processes that are gone.
fn write_policy() -> Result<PolicyFile, String> {
    let dir = Path::new(POLICY_DIR);
    let denied = |e: std::io::Error| {
        format!(
            "cannot write Chromium's managed policy in {POLICY_DIR} ({e}); the \
             AutoSelectCertificateForUrls policy that presents the client certificate lives \
             there: run the browser tests as root (as CI does) or make that folder writable"
        )
    };
    std::fs::create_dir_all(dir).map_err(denied)?;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix("sluice-tests-")
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok());
            if let Some(pid) = pid {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
    let patterns: Vec<String> = AUTO_SELECT_PATTERNS
        .iter()
        .map(|p| json!({ "pattern": p, "filter": {} }).to_string())
        .collect();
    let policy = json!({ "AutoSelectCertificateForUrls": patterns });
    let n = LAUNCHED.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("sluice-tests-{}-{n}.json", std::process::id()));
    std::fs::write(&path, policy.to_string()).map_err(denied)?;
    Ok(PolicyFile(path))
}

/// The end of chromedriver's log, for error messages.
fn log_tail(home: &Path) -> String {
    let log = std::fs::read_to_string(home.join("chromedriver.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Starts chromedriver with `HOME=home` on a free loopback port (a few tries, should another
/// process take the port first); returns it once `/status` says it is ready.
async fn start_chromedriver(home: &Path) -> Result<(Driver, u16), String> {
    let mut last = String::new();
    for _ in 0..3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("free port: {e}"))?
            .port();
        let log = std::fs::File::create(home.join("chromedriver.log")).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let child = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .env("HOME", home)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("XDG_DATA_HOME")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("chromedriver: {e}"))?;
        let group = child
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(id as i32));
        let mut driver = Driver { child, group };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = driver.child.try_wait() {
                last = format!("chromedriver exited ({status}):\n{}", log_tail(home));
                break;
            }
            if ready(port).await {
                return Ok((driver, port));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "chromedriver not ready on port {port} in {START_TIMEOUT:?}:\n{}",
                    log_tail(home)
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Err(last)
}

/// Whether chromedriver on `port` answers `GET /status` with `"ready": true`.
async fn ready(port: u16) -> bool {
    let ask = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        // chromedriver keeps the connection open despite `Connection: close`: read until the
        // body is a whole JSON document.
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            answer.extend_from_slice(&chunk[..n]);
            let answer = String::from_utf8_lossy(&answer);
            if let Some((_, body)) = answer.split_once("\r\n\r\n") {
                if let Ok(status) = serde_json::from_str::<serde_json::Value>(body) {
                    return status["value"]["ready"].as_bool();
                }
            }
        }
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), ask).await,
        Ok(Some(true))
    )
}

/// A WebDriver session with headless Chromium, its profile in `home`.
async fn session(port: u16, home: &Path) -> Result<fantoccini::Client, String> {
    let chromium = which("chromium").ok_or("chromium is not on PATH")?;
    let mut caps = Capabilities::new();
    caps.insert("browserName".into(), json!("chrome"));
    // Bounded navigation: a page that never loads (say, a certificate dialog nobody answers)
    // fails the test instead of hanging it for chromedriver's default 5 minutes.
    caps.insert(
        "timeouts".into(),
        json!({ "pageLoad": 30_000, "script": 30_000, "implicit": 0 }),
    );
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1280,900",
                "--hide-scrollbars",
                "--lang=en-US",
                "--no-first-run",
                "--password-store=basic",
                format!("--user-data-dir={}", home.join("profile").display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    fantoccini::ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .map_err(|e| format!("WebDriver session: {e}; chromedriver log:\n{}", log_tail(home)))
}
