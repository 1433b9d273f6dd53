//! A child process of the `sluice` binary whose output is collected line by line, killed (and
//! reaped) when dropped.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The `sluice` binary built for this package's tests and benches.
pub fn sluice_bin() -> &'static str {
    env!("CARGO_BIN_EXE_sluice")
}

#[derive(Default)]
struct Output {
    lines: Vec<String>,
    closed: usize,
}

/// A running `sluice` child process.
pub struct Proc {
    name: String,
    child: Child,
    output: Arc<(Mutex<Output>, Condvar)>,
}

impl Proc {
    /// Starts `sluice <args>` with `SLUICE_LOG=info`, collecting stdout and stderr.
    pub fn spawn(name: &str, args: &[&str]) -> Proc {
        Self::spawn_env(name, args, &[])
    }

    /// [`Proc::spawn`] with `env` added to the environment.
    pub fn spawn_env(name: &str, args: &[&str], env: &[(String, String)]) -> Proc {
        let mut child = Command::new(sluice_bin())
            .args(args)
            .env("SLUICE_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        let output = Arc::new((Mutex::new(Output::default()), Condvar::new()));
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        collect(out, output.clone());
        collect(err, output.clone());
        Proc {
            name: name.to_owned(),
            child,
            output,
        }
    }

    /// The first line (stdout or stderr) for which `pick` gives `Some`, waiting up to
    /// `within`. Panics with the output so far when none comes or the process exits.
    pub fn wait_for<T>(&self, within: Duration, mut pick: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + within;
        let (lock, cv) = &*self.output;
        let mut out = lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut seen = 0;
        loop {
            for line in &out.lines[seen..] {
                if let Some(t) = pick(line) {
                    return t;
                }
            }
            seen = out.lines.len();
            let now = Instant::now();
            if out.closed == 2 || now >= deadline {
                let why = if out.closed == 2 { "exited" } else { "timed out" };
                let text = out.lines.join("\n");
                drop(out);
                panic!("{}: {why} waiting for a line; output:\n{text}", self.name);
            }
            out = cv
                .wait_timeout(out, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Whether some output line so far contains `needle`.
    pub fn printed(&self, needle: &str) -> bool {
        self.output
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .lines
            .iter()
            .any(|l| l.contains(needle))
    }

    /// Everything printed so far.
    pub fn output(&self) -> String {
        self.output
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .lines
            .join("\n")
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `within` for the process to exit; its exit code (`None` if it is still
    /// running, or was ended by a signal).
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let out = self.output();
            let tail: Vec<&str> = out.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!("--- {} (last lines) ---\n{}", self.name, tail.join("\n"));
        }
    }
}

fn collect(stream: impl Read + Send + 'static, output: Arc<(Mutex<Output>, Condvar)>) {
    std::thread::spawn(move || {
        let (lock, cv) = &*output;
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            lock.lock().unwrap_or_else(|p| p.into_inner()).lines.push(line);
            cv.notify_all();
        }
        lock.lock().unwrap_or_else(|p| p.into_inner()).closed += 1;
        cv.notify_all();
    });
}

/// Runs `sluice <args>` to completion with extra environment; (exit code, stdout, stderr).
pub fn run(args: &[&str], env: &[(&str, String)]) -> (i32, String, String) {
    let mut cmd = Command::new(sluice_bin());
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
