//! README's walkthrough, run as a reader runs it, so README cannot drift from the demo.
//!
//! The blocks fenced as ```` ```sh walkthrough ```` are taken from README.md verbatim. The
//! test lays out a temporary folder the way the clone's folder looks after `cargo run
//! --release -- demo`: the demo runs (the real binary) in the folder the block's `D=` names and
//! the binary sits where its `SLUICE=` points (a symlink to the binary under test). Each
//! command then runs there with `bash -euo pipefail` after the block's variable assignments,
//! none of them taken from the environment; it must exit 0, and its output must hold the
//! block's `#>` lines that follow it, in order (`…` skips anything).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::process::Proc;

const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
/// The info string that marks a block the test runs.
const MARKER: &str = "walkthrough";
/// Longest run of one command (seconds); `timeout` kills its whole process group after it.
const STEP_TIMEOUT_S: &str = "60";
/// How long a `curl` whose output does not match yet is asked again: registry changes reach
/// the gateways asynchronously (README: within a second).
const SETTLE: Duration = Duration::from_secs(10);

/// One command of a walkthrough block and the `#>` lines after it.
#[derive(Debug)]
struct Step {
    /// README line number of its first line.
    line: usize,
    /// The command, continuation lines included.
    command: String,
    /// The `#>` lines, without the marker.
    expect: Vec<String>,
}

impl Step {
    /// The variable this step assigns (`NAME=…`), if it is an assignment.
    fn assigns(&self) -> Option<&str> {
        let (name, _) = self.command.split_once('=')?;
        let ok = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        ok.then_some(name)
    }

    /// The literal value of an assignment `NAME=value  # comment`.
    fn literal_value(&self) -> &str {
        let (_, rest) = self.command.split_once('=').unwrap();
        rest.split_whitespace().next().unwrap_or_default()
    }
}

/// The steps of README's walkthrough blocks, in order.
fn walkthrough(readme: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut in_block = false;
    let mut blocks = 0;
    let mut continued = false;
    for (i, line) in readme.lines().enumerate() {
        let n = i + 1;
        if let Some(info) = line.trim_start().strip_prefix("```") {
            if in_block {
                assert!(
                    !continued,
                    "README:{n}: the block ends inside a continued command"
                );
                in_block = false;
            } else if info.split_whitespace().any(|w| w == MARKER) {
                in_block = true;
                blocks += 1;
            }
            continue;
        }
        if !in_block {
            continue;
        }
        let t = line.trim_end();
        if continued {
            let step = steps.last_mut().unwrap();
            step.command.push('\n');
            step.command.push_str(t);
            continued = t.ends_with('\\');
        } else if let Some(e) = t.trim_start().strip_prefix("#>") {
            let step = steps
                .last_mut()
                .unwrap_or_else(|| panic!("README:{n}: a `#>` line before any command"));
            step.expect.push(e.trim().to_owned());
        } else if t.trim().is_empty() || t.trim_start().starts_with('#') {
            continue;
        } else {
            steps.push(Step {
                line: n,
                command: t.to_owned(),
                expect: Vec::new(),
            });
            continued = t.ends_with('\\');
        }
    }
    assert!(!in_block, "README: a walkthrough block is not closed");
    assert!(
        blocks >= 1,
        "README has no ```sh {MARKER} block; the walkthrough must be marked"
    );
    steps
}

/// Whether `out` holds every `…`-separated fragment of `expect`, in order.
fn matches(out: &str, expect: &[String]) -> Result<(), String> {
    let mut at = 0;
    for line in expect {
        for frag in line.split('…').map(str::trim).filter(|f| !f.is_empty()) {
            match out[at..].find(frag) {
                Some(i) => at += i + frag.len(),
                None => return Err(format!("`{frag}` (of `#> {line}`) is not in the output")),
            }
        }
    }
    Ok(())
}

/// Runs `script` with bash in `cwd`, bounded; none of `unset` comes from this environment.
fn bash(cwd: &Path, script: &str, unset: &[String]) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "5", STEP_TIMEOUT_S, "bash", "-c", script])
        .current_dir(cwd)
        .stdin(Stdio::null());
    for v in unset {
        cmd.env_remove(v);
    }
    cmd.output().expect("running bash under timeout (coreutils)")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn require(tool: &str) {
    let found = Command::new("bash")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "README's walkthrough needs `{tool}` on PATH");
}

#[test]
fn readme_walkthrough_runs_against_the_demo() {
    for tool in ["bash", "timeout", "curl", "jq"] {
        require(tool);
    }
    let readme = std::fs::read_to_string(README).unwrap();
    let steps = walkthrough(&readme);

    // The blocks declare what they need: the demo folder and the binary, as relative paths a
    // reader has in the clone's folder.
    let assigned = |name: &str| {
        steps
            .iter()
            .find(|s| s.assigns() == Some(name))
            .unwrap_or_else(|| panic!("no walkthrough block assigns {name}="))
    };
    let layout = |name: &str| {
        let step = assigned(name);
        let value = step.literal_value();
        assert!(
            !value.is_empty() && !value.contains(['$', '"', '\'', '`']) && Path::new(value).is_relative(),
            "README:{}: {name}= should be a plain relative path, is `{value}`",
            step.line
        );
        PathBuf::from(value)
    };
    let (demo_rel, bin_rel) = (layout("D"), layout("SLUICE"));
    // Nothing the blocks use may come from the reader's (or this test's) environment.
    let mut unset: Vec<String> = steps
        .iter()
        .filter_map(|s| s.assigns().map(str::to_owned))
        .collect();
    unset.extend(
        [
            "SLUICE_REGISTRY",
            "SLUICE_CA",
            "SLUICE_ADMIN_CERT",
            "SLUICE_ADMIN_KEY",
        ]
        .map(String::from),
    );

    // README has to keep showing what the demo is for.
    let all: String = steps.iter().flat_map(|s| s.expect.iter()).cloned().collect();
    for must in [
        "****",
        "https://sluice.dev/problems/scenario-not-licensed",
        "https://sluice.dev/problems/licence-suspended",
        "chain OK",
        ": ok (registry",
    ] {
        assert!(
            all.contains(must),
            "README's walkthrough no longer shows `{must}`"
        );
    }

    // The clone's folder as the reader has it: the binary, and the demo running in D.
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let bin = cwd.join(&bin_rel);
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(support::process::sluice_bin(), &bin).unwrap();
    let demo_dir = cwd.join(&demo_rel);
    let demo = Proc::spawn("sluice demo", &["demo", "--dir", demo_dir.to_str().unwrap()]);
    demo.wait_for(Duration::from_secs(180), |l| {
        l.contains("Ctrl-C stops the demo.").then_some(())
    });
    assert!(demo_dir.join("demo.json").is_file());

    let mut prelude = String::from("set -euo pipefail\n");
    for step in &steps {
        let here = format!("README:{}: {}", step.line, step.command);
        if let Some(name) = step.assigns() {
            // An assignment must give its variable a value (jq prints `null` for a missing key).
            let out = bash(
                cwd,
                &format!("{prelude}{}\nprintf '%s' \"${name}\"\n", step.command),
                &unset,
            );
            let value = text(&out.stdout);
            assert!(
                out.status.success() && !value.is_empty() && value != "null",
                "{here}\nexit {:?}, {name}=`{value}`\n{}",
                out.status.code(),
                text(&out.stderr)
            );
            prelude.push_str(&step.command);
            prelude.push('\n');
            continue;
        }
        let script = format!("{prelude}{}\n", step.command);
        let started = Instant::now();
        loop {
            let out = bash(cwd, &script, &unset);
            let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
            assert!(
                out.status.success(),
                "{here}\nexit {:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
                out.status.code()
            );
            match matches(&stdout, &step.expect) {
                Ok(()) => break,
                Err(_) if step.command.starts_with("curl") && started.elapsed() < SETTLE => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(why) => panic!("{here}\n{why}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"),
            }
        }
    }
    drop(demo); // kills the demo (also when a step panicked above)
}

#[test]
fn expected_output_lines_match_in_order_with_gaps() {
    let e = |s: &str| vec![s.to_owned()];
    assert!(matches(r#"{"a":1,"b":2,"c":3}"#, &e(r#"{"a":1,…"c":3}"#)).is_ok());
    assert!(matches(r#"{"a":1,"b":2,"c":3}"#, &e(r#"{"c":3,…"a":1}"#)).is_err());
    assert!(matches("x\nchain OK\n", &["x".to_owned(), "chain OK".to_owned()]).is_ok());
    let steps = walkthrough("```sh walkthrough\nA=1  # one\n# note\necho $A \\\n  two\n#> 1 two\n```\n");
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0].assigns(), Some("A"));
    assert_eq!(steps[0].literal_value(), "1");
    assert_eq!(steps[1].command, "echo $A \\\n  two");
    assert_eq!(steps[1].expect, vec!["1 two".to_owned()]);
}
