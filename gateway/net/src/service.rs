//! Telling a service manager (systemd, `Type=notify`) where a server is in its life: ready
//! once its listeners accept, reloading during a SIGHUP reload, stopping while it drains.
//! Without `NOTIFY_SOCKET` (not started by a service manager) every call does nothing.

use sd_notify::NotifyState;

fn send(what: &str, states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, state = what, "could not notify the service manager");
    }
}

/// The server accepts connections; `status` is shown by `systemctl status`.
pub fn ready(status: &str) {
    send("ready", &[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload (SIGHUP) has begun; [`ready`] ends it.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send("reloading", &[NotifyState::Reloading, now]),
        Err(_) => send("reloading", &[NotifyState::Reloading]),
    }
}

/// The server has begun to stop (draining).
pub fn stopping() {
    send("stopping", &[NotifyState::Stopping]);
}
