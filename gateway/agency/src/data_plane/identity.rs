//! Phase: identity. Who is calling, from the certificate the TLS layer verified, and whether
//! the registry revoked that certificate.

use super::context::Ctx;
use crate::listeners::ListenerKind;
use crate::runtime::{normalise_serial, Runtime};
use sluice_net::identity::PeerIdentity;
use sluice_net::problem::{Problem, ProblemCode};
use sluice_net::server::Conn;
use sluice_policy::id::LicenseeId;

/// The licensee of the connection (`None` on the public listener), recorded in `ctx`.
/// The data listener refuses certificates that name no licensee, and certificates whose
/// serial the registry revoked.
pub fn identify(
    kind: ListenerKind,
    conn: &Conn,
    rt: &Runtime,
    ctx: &mut Ctx,
) -> Result<Option<LicenseeId>, Problem> {
    let peer = match (kind, &conn.identity) {
        (ListenerKind::Public, _) => return Ok(None),
        (ListenerKind::Data, PeerIdentity::Licensee(p)) => p,
        (ListenerKind::Data, PeerIdentity::Gateway(p) | PeerIdentity::Admin(p)) => {
            ctx.fingerprint = Some(p.fingerprint.clone());
            ctx.serial = Some(p.serial.clone());
            tracing::info!(
                identity = conn.identity.describe(),
                "certificate identifies no licensee"
            );
            return Err(no_licensee());
        }
        (
            ListenerKind::Data,
            PeerIdentity::Invalid {
                reason,
                fingerprint,
                serial,
            },
        ) => {
            ctx.fingerprint = Some(fingerprint.clone());
            ctx.serial = (!serial.is_empty()).then(|| serial.clone());
            tracing::info!(reason, "certificate without a licensee identity");
            return Err(no_licensee());
        }
        (ListenerKind::Data, PeerIdentity::None) => {
            return Err(Problem::new(
                ProblemCode::Unauthenticated,
                "a licensee client certificate is required",
            ))
        }
    };
    ctx.fingerprint = Some(peer.fingerprint.clone());
    ctx.serial = Some(peer.serial.clone());
    let licensee = LicenseeId::parse(peer.id.as_str()).map_err(|e| {
        tracing::info!(error = %e, "certificate licensee id does not follow the id rule");
        no_licensee()
    })?;
    ctx.licensee = Some(licensee.clone());
    if rt.revoked_serials.contains(&normalise_serial(&peer.serial)) {
        return Err(Problem::new(
            ProblemCode::CertificateRevoked,
            format!("certificate serial {} is revoked", peer.serial),
        ));
    }
    Ok(Some(licensee))
}

fn no_licensee() -> Problem {
    Problem::new(
        ProblemCode::UnknownLicensee,
        "the client certificate carries no valid urn:sluice:licensee identity",
    )
}
