//! CSRF protection for the console's changes. A browser presents the administrator's
//! certificate to any page that asks, so a change must prove it came from a console page:
//! its form carries a token, an HMAC-SHA-256 of the administrator and the UTC day under a
//! secret derived from the registry key (the same at every replica; valid the day it was
//! issued and the next), and the request must not come from another site (`Origin`,
//! `Sec-Fetch-Site`).

use crate::problem::{Problem, ProblemCode as P};
use crate::snapshot::Distributor;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use http::HeaderMap;

type HmacSha256 = Hmac<sha2::Sha256>;

/// The form field that carries the token.
pub const FIELD: &str = "csrf";

fn mac(dist: &Distributor, admin: &str, day: i64) -> HmacSha256 {
    // HMAC zero-pads a key to the hash's block size (64 bytes); padding it here gives the
    // same MAC through the constructor that cannot fail.
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(&dist.derived_secret("console csrf"));
    let mut m = <HmacSha256 as hmac::digest::KeyInit>::new(&key.into());
    m.update(format!("{admin}\n{day}").as_bytes());
    m
}

fn today() -> i64 {
    time::OffsetDateTime::now_utc()
        .unix_timestamp()
        .div_euclid(86_400)
}

/// The token for `admin`'s forms today.
pub fn token(dist: &Distributor, admin: &str) -> String {
    URL_SAFE_NO_PAD.encode(mac(dist, admin, today()).finalize().into_bytes())
}

/// Refuses (`403 csrf-rejected`) a change from another site (one whose `Origin` is not
/// `https://<host>`, the host it was sent to) or without a token issued to `admin` today or
/// yesterday.
pub fn check(
    dist: &Distributor,
    admin: &str,
    host: &str,
    headers: &HeaderMap,
    token: Option<&str>,
) -> Result<(), Problem> {
    same_site(headers, host)?;
    let sent = token
        .and_then(|t| URL_SAFE_NO_PAD.decode(t).ok())
        .ok_or_else(|| refuse("the form carries no CSRF token; reload the page and send it again"))?;
    let today = today();
    if [today, today - 1]
        .into_iter()
        .any(|day| mac(dist, admin, day).verify_slice(&sent).is_ok())
    {
        Ok(())
    } else {
        Err(refuse(
            "the form's CSRF token is not valid for this administrator today; reload the page and send it again",
        ))
    }
}

/// Refuses a request a browser marks as coming from another site, or whose `Origin` is not
/// the host it was sent to.
fn same_site(headers: &HeaderMap, host: &str) -> Result<(), Problem> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        if site != "same-origin" {
            return Err(refuse(format!(
                "a console change must come from a console page (Sec-Fetch-Site: {site})"
            )));
        }
    }
    if let Some(origin) = text("origin") {
        if origin != format!("https://{host}") {
            return Err(refuse(format!(
                "a console change must come from a console page (Origin: {origin})"
            )));
        }
    }
    Ok(())
}

fn refuse(detail: impl Into<String>) -> Problem {
    Problem::new(P::CsrfRejected, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const HOST: &str = "registry.example:8443";

    async fn dist() -> std::sync::Arc<Distributor> {
        let store = crate::store::Store::open("sqlite::memory:").await.unwrap();
        Distributor::new(store, ed25519_dalek::SigningKey::from_bytes(&[7; 32]))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_token_is_the_administrators_own() {
        let d = dist().await;
        let h = HeaderMap::new();
        let t = token(&d, "alice");
        assert!(check(&d, "alice", HOST, &h, Some(&t)).is_ok());
        for bad in [
            None,
            Some(""),
            Some("not base64!"),
            Some(token(&d, "bob").as_str()),
        ] {
            let p = check(&d, "alice", HOST, &h, bad).unwrap_err();
            assert_eq!(p.code, P::CsrfRejected, "{bad:?}");
        }
        let yesterday = URL_SAFE_NO_PAD.encode(mac(&d, "alice", today() - 1).finalize().into_bytes());
        assert!(check(&d, "alice", HOST, &h, Some(&yesterday)).is_ok());
        let older = URL_SAFE_NO_PAD.encode(mac(&d, "alice", today() - 2).finalize().into_bytes());
        assert!(check(&d, "alice", HOST, &h, Some(&older)).is_err());
        let other = Distributor::new(
            crate::store::Store::open("sqlite::memory:").await.unwrap(),
            ed25519_dalek::SigningKey::from_bytes(&[8; 32]),
        )
        .await
        .unwrap();
        assert!(
            check(&other, "alice", HOST, &h, Some(&t)).is_err(),
            "another registry key"
        );
    }

    #[tokio::test]
    async fn a_change_from_another_site_is_refused_even_with_a_token() {
        let d = dist().await;
        let t = token(&d, "alice");
        let mut h = HeaderMap::new();
        h.insert(
            "origin",
            HeaderValue::from_static("https://registry.example:8443"),
        );
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(check(&d, "alice", HOST, &h, Some(&t)).is_ok());
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(check(&d, "alice", HOST, &h, Some(&t)).is_err());
        h.remove("sec-fetch-site");
        h.insert("origin", HeaderValue::from_static("https://evil.example"));
        assert!(check(&d, "alice", HOST, &h, Some(&t)).is_err());
        h.insert("origin", HeaderValue::from_static("null"));
        assert!(check(&d, "alice", HOST, &h, Some(&t)).is_err());
    }
}
