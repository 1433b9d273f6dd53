//! `sluice registry` and `sluice gateway` under a service manager (systemd `Type=notify`):
//! each tells `NOTIFY_SOCKET` it is ready only once it answers, the gateway tells a SIGHUP
//! reload (`RELOADING=1` with the monotonic time, then `READY=1`), and both tell `STOPPING=1`
//! when SIGTERM starts their drain. The socket here is the test's own, as systemd's would be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;
use support::federation::{Backend, Federation, GatewayOptions};
use support::process::Proc;

/// A notification socket at `path`; reads wait at most 60 s.
fn socket(path: &Path) -> UnixDatagram {
    let s = UnixDatagram::bind(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s
}

/// The next notification, as its lines.
fn next(s: &UnixDatagram) -> Vec<String> {
    let mut buf = [0u8; 4096];
    let n = s.recv(&mut buf).expect("a notification within 60 s");
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn signal(p: &Proc, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &p.pid().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[tokio::test]
async fn registry_and_gateway_tell_the_service_manager_ready_reloading_and_stopping() {
    let mut fed = Federation::start(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();

    let registry_socket = socket(&dir.path().join("registry.sock"));
    fed.child_env = vec![(
        "NOTIFY_SOCKET".into(),
        dir.path().join("registry.sock").display().to_string(),
    )];
    fed.start_registry().await;
    let ready = next(&registry_socket);
    assert!(ready.contains(&"READY=1".to_owned()), "{ready:?}");
    assert!(ready.contains(&"STATUS=serving".to_owned()), "{ready:?}");

    let gateway_socket = socket(&dir.path().join("gateway.sock"));
    fed.child_env = vec![(
        "NOTIFY_SOCKET".into(),
        dir.path().join("gateway.sock").display().to_string(),
    )];
    let mut gw = fed.gateway("gw-notify", GatewayOptions::default());
    assert!(next(&gateway_socket).contains(&"READY=1".to_owned()));
    // Ready means serving: the admin listener answers.
    let (status, body) = support::probe::admin_get(gw.admin, "/healthz").await;
    assert_eq!(status, 200, "{body}");

    signal(&gw.proc, "-HUP");
    let reloading = next(&gateway_socket);
    assert!(reloading.contains(&"RELOADING=1".to_owned()), "{reloading:?}");
    assert!(
        reloading.iter().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading:?}"
    );
    assert!(next(&gateway_socket).contains(&"READY=1".to_owned()));

    signal(&gw.proc, "-TERM");
    assert_eq!(next(&gateway_socket), vec!["STOPPING=1".to_owned()]);
    assert_eq!(gw.proc.wait_exit(Duration::from_secs(30)), Some(0));

    let mut registry = fed.registry.take().unwrap();
    signal(&registry, "-TERM");
    assert_eq!(next(&registry_socket), vec!["STOPPING=1".to_owned()]);
    assert_eq!(registry.wait_exit(Duration::from_secs(30)), Some(0));
    fed.finish().await;
}
