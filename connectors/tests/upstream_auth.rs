//! Upstream authentication of HTTP sources against servers this test runs on loopback:
//! mutual TLS (a CA, a server and a client certificate made here), and OAuth2 client
//! credentials (a token endpoint that counts its requests, upstreams that accept only the
//! current token).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sluice_certs::{issue_gateway, issue_licensee, Ca, InitOptions, IssueGateway};
use sluice_connectors::{connect, Connector, Fetch, FetchError, Shared, SourceConfig, SourceData};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Every wait of these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(20);

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: &str) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body.to_owned())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    r
}

/// Serves HTTP/1.1 on a loopback port with `handler`, each connection through `wrap` (TLS or
/// none); runs until the test's runtime ends.
async fn serve<H, Fut, W, WFut, IO>(handler: H, wrap: W) -> SocketAddr
where
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
    W: Fn(tokio::net::TcpStream) -> WFut + Send + Sync + 'static,
    WFut: Future<Output = Option<IO>> + Send + 'static,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let handler = handler.clone();
            let io = wrap(tcp);
            tokio::spawn(async move {
                // A failed TLS handshake is the client's problem, not the server's.
                let Some(io) = io.await else { return };
                let svc = service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(io), svc)
                    .await;
            });
        }
    });
    addr
}

async fn plain(tcp: tokio::net::TcpStream) -> Option<tokio::net::TcpStream> {
    Some(tcp)
}

/// An HTTP source from TOML (`kind = "http"` added), paths resolved against `dir`.
fn source(dir: &Path, toml_body: &str) -> SourceConfig {
    let mut c: SourceConfig = toml::from_str(&format!("kind = \"http\"\n{toml_body}")).unwrap();
    c.resolve_paths(dir);
    c
}

fn connector(c: &SourceConfig) -> Arc<dyn Connector> {
    assert_eq!(c.validate(), Vec::<(String, String)>::new());
    connect(c, &Shared::for_sources([c]))
}

async fn fetch_body(c: &dyn Connector) -> Result<Bytes, FetchError> {
    let fetch = Fetch {
        limit: 10,
        request_id: "t1",
        ..Fetch::default()
    };
    let data = tokio::time::timeout(BOUND, c.fetch(&fetch)).await.unwrap()?;
    let SourceData::Bytes(body) = data else {
        panic!("an HTTP source returns bytes")
    };
    Ok(body.collect().await.unwrap().to_bytes())
}

/// `n` fetches at once; every result.
async fn fetch_many(c: &Arc<dyn Connector>, n: usize) -> Vec<Result<Bytes, FetchError>> {
    let mut set = JoinSet::new();
    for _ in 0..n {
        let c = c.clone();
        set.spawn(async move { fetch_body(&*c).await });
    }
    let mut out = Vec::new();
    while let Some(r) = tokio::time::timeout(BOUND, set.join_next()).await.unwrap() {
        out.push(r.unwrap());
    }
    out
}

// ---------------------------------------------------------------- mutual TLS

/// A CA, a server certificate for localhost and 127.0.0.1, a client certificate, and another
/// CA, as PEM files in `dir`.
fn make_pki(dir: &Path) {
    let ca = Ca::init(dir.join("ca"), InitOptions::default()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.cert_pem().unwrap()).unwrap();
    let params = IssueGateway {
        dns: vec!["localhost".into()],
        ips: vec!["127.0.0.1".parse().unwrap()],
        days: 1,
    };
    issue_gateway(&ca, params)
        .unwrap()
        .write_to(dir, "server")
        .unwrap();
    issue_licensee(&ca, "upstream-client", 1)
        .unwrap()
        .write_to(dir, "client")
        .unwrap();
    let other = Ca::init(dir.join("other"), InitOptions::default()).unwrap();
    std::fs::write(dir.join("other-ca.pem"), other.cert_pem().unwrap()).unwrap();
}

/// A TLS server that requires a client certificate chained to `dir/ca.pem`.
async fn mtls_server(dir: &Path) -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .unwrap();
    let chain = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    serve(
        |_req| async { reply(StatusCode::OK, r#"[{"id":1}]"#) },
        move |tcp| {
            let acceptor = acceptor.clone();
            async move { acceptor.accept(tcp).await.ok() }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_fetches_with_the_client_certificate_and_fails_without_it_or_with_a_wrong_ca() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let port = mtls_server(dir.path()).await.port();

    for host in ["localhost", "127.0.0.1"] {
        let c = source(
            dir.path(),
            &format!(
                "url = \"https://{host}:{port}/records\"\n\
                 tls = {{ ca = \"ca.pem\", cert = \"client.pem\", key = \"client.key\" }}\n"
            ),
        );
        let creds = c.credentials();
        assert_eq!(creds.len(), 1, "{creds:?}");
        assert_eq!(creds[0].0, "client certificate");
        assert!(
            creds[0].1.starts_with("file ") && creds[0].1.contains("client.pem"),
            "{creds:?}"
        );
        let body = fetch_body(&*connector(&c)).await.unwrap();
        assert_eq!(&body[..], br#"[{"id":1}]"#, "{host}");
    }

    // No client certificate: the server ends the handshake; a fetch error, not a panic.
    let c = source(
        dir.path(),
        &format!("url = \"https://localhost:{port}/records\"\ntls = {{ ca = \"ca.pem\" }}\n"),
    );
    let e = fetch_body(&*connector(&c)).await.unwrap_err();
    assert!(matches!(e, FetchError::Unreachable(_)), "{e:?}");

    // The server's certificate does not chain to the configured CA.
    let c = source(
        dir.path(),
        &format!(
            "url = \"https://localhost:{port}/records\"\n\
             tls = {{ ca = \"other-ca.pem\", cert = \"client.pem\", key = \"client.key\" }}\n"
        ),
    );
    let e = fetch_body(&*connector(&c)).await.unwrap_err();
    assert!(
        matches!(&e, FetchError::Unreachable(m) if m.contains("certificate")),
        "{e:?}"
    );
}

#[test]
fn tls_settings_are_validated_by_name() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let problems = |body: &str| -> Vec<String> {
        source(dir.path(), body)
            .validate()
            .into_iter()
            .map(|(path, _)| path)
            .collect()
    };
    assert_eq!(problems("url = \"https://localhost:1/\"\n"), ["tls.ca"]);
    assert_eq!(
        problems("url = \"https://localhost:1/\"\ntls = { cert = \"client.pem\", key = \"client.key\" }\n"),
        ["tls.ca"]
    );
    assert_eq!(
        problems("url = \"https://localhost:1/\"\ntls = { ca = \"missing.pem\" }\n"),
        ["tls.ca"]
    );
    assert_eq!(
        problems("url = \"https://localhost:1/\"\ntls = { ca = \"ca.pem\", cert = \"client.pem\", key = \"missing.key\" }\n"),
        ["tls.key"]
    );
    assert_eq!(
        problems("url = \"https://localhost:1/\"\ntls = { ca = \"ca.pem\", cert = \"client.key\", key = \"client.key\" }\n"),
        ["tls.cert"]
    );
    assert_eq!(
        problems("url = \"https://localhost:1/\"\ntls = { ca = \"ca.pem\", cert = \"client.pem\" }\n"),
        ["tls.key"]
    );
    assert_eq!(
        problems("url = \"http://localhost:1/\"\ntls = { ca = \"ca.pem\" }\n"),
        ["tls"]
    );
    assert!(problems("url = \"https://localhost:1/\"\ntls = { ca = \"ca.pem\" }\n").is_empty());
}

// ---------------------------------------------------------------- OAuth2 client credentials

/// The token endpoint and the upstream of an OAuth2 test.
#[derive(Default)]
struct Auth {
    /// Token requests answered.
    token_requests: AtomicUsize,
    /// Upstream requests answered.
    upstream_requests: AtomicUsize,
    /// The token the upstream accepts, and when it was issued.
    current: Mutex<Option<(String, Instant)>>,
    /// The upstream refuses every token.
    always_refuse: AtomicBool,
    /// The token endpoint refuses the client.
    refuse_client: AtomicBool,
}

/// Tokens live this long.
const TOKEN_LIFE: Duration = Duration::from_secs(2);

impl Auth {
    fn tokens(&self) -> usize {
        self.token_requests.load(Ordering::SeqCst)
    }

    fn upstream(&self) -> usize {
        self.upstream_requests.load(Ordering::SeqCst)
    }

    /// `POST /token`: client credentials in HTTP Basic, a new token each time (the last one
    /// is the only one the upstream accepts), after a short delay so that concurrent askers
    /// would overlap.
    async fn issue(self: Arc<Self>, req: Request<Incoming>) -> Reply {
        let basic = req.headers().get(header::AUTHORIZATION).cloned();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
        assert!(
            form.contains(&("grant_type".into(), "client_credentials".into())),
            "{form:?}"
        );
        assert!(
            form.contains(&("scope".into(), "records:read".into())),
            "{form:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let n = self.token_requests.fetch_add(1, Ordering::SeqCst) + 1;
        if self.refuse_client.load(Ordering::SeqCst)
            || basic.as_ref().and_then(|v| v.to_str().ok()) != Some("Basic Z2F0ZXdheTpzM2NyZXQ=")
        {
            return reply(
                StatusCode::UNAUTHORIZED,
                r#"{"error":"invalid_client","error_description":"unknown client"}"#,
            );
        }
        let token = format!("tok-{n}");
        *self.current.lock().unwrap() = Some((token.clone(), Instant::now()));
        reply(
            StatusCode::OK,
            &format!(
                r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{}}}"#,
                TOKEN_LIFE.as_secs()
            ),
        )
    }

    /// The records, for the current unexpired token only (401 otherwise).
    async fn records(self: Arc<Self>, req: Request<Incoming>) -> Reply {
        self.upstream_requests.fetch_add(1, Ordering::SeqCst);
        assert!(
            req.headers().get(header::CONTENT_LENGTH).is_none(),
            "a GET has no body"
        );
        let sent = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let ok = !self.always_refuse.load(Ordering::SeqCst)
            && match &*self.current.lock().unwrap() {
                Some((t, at)) => sent == Some(format!("Bearer {t}")) && at.elapsed() < TOKEN_LIFE,
                None => false,
            };
        if ok {
            reply(StatusCode::OK, "[]")
        } else {
            reply(StatusCode::UNAUTHORIZED, "")
        }
    }
}

/// A token endpoint and an upstream, and a source that uses them (its secret in a file).
async fn oauth_setup(dir: &Path) -> (Arc<Auth>, Arc<dyn Connector>, SocketAddr) {
    let auth = Arc::new(Auth::default());
    let a = auth.clone();
    let token_addr = serve(move |req| a.clone().issue(req), plain).await;
    let a = auth.clone();
    let upstream_addr = serve(move |req| a.clone().records(req), plain).await;
    std::fs::write(dir.join("client-secret"), "s3cret\n").unwrap();
    let c = source(
        dir,
        &format!(
            "url = \"http://{upstream_addr}/records\"\n\
             [oauth2]\n\
             token_url = \"http://{token_addr}/token\"\n\
             client_id = \"gateway\"\n\
             client_secret = {{ file = \"client-secret\" }}\n\
             scopes = [\"records:read\"]\n\
             refresh_before_s = 1\n"
        ),
    );
    let creds = c.credentials();
    assert_eq!(creds.len(), 1, "{creds:?}");
    assert_eq!(creds[0].0, "oauth2 client secret");
    assert!(
        creds[0].1.starts_with("file ") && creds[0].1.ends_with("client-secret"),
        "{creds:?}"
    );
    (auth, connector(&c), token_addr)
}

fn all_ok(results: &[Result<Bytes, FetchError>]) {
    for r in results {
        assert_eq!(
            r.as_ref().map(|b| &b[..]).map_err(ToString::to_string),
            Ok(&b"[]"[..])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_request_for_a_hundred_concurrent_fetches_and_one_more_after_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let (auth, c, _) = oauth_setup(dir.path()).await;

    all_ok(&fetch_many(&c, 100).await);
    assert_eq!((auth.tokens(), auth.upstream()), (1, 100));

    // Past the token's expiry (the gateway drops it a second before): one new token.
    tokio::time::sleep(TOKEN_LIFE + Duration::from_millis(300)).await;
    all_ok(&fetch_many(&c, 100).await);
    assert_eq!((auth.tokens(), auth.upstream()), (2, 200));

    // Within its life the token is reused.
    all_ok(&fetch_many(&c, 10).await);
    assert_eq!(auth.tokens(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_replaced_once_and_the_fetch_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (auth, c, token_addr) = oauth_setup(dir.path()).await;
    all_ok(&[fetch_body(&*c).await]);
    assert_eq!((auth.tokens(), auth.upstream()), (1, 1));

    // Someone else takes a token: the upstream now refuses the gateway's (a rotation).
    let rotate = || async {
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<Full<Bytes>>();
        let req = Request::post(format!("http://{token_addr}/token"))
            .header(header::AUTHORIZATION, "Basic Z2F0ZXdheTpzM2NyZXQ=")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from_static(
                b"grant_type=client_credentials&scope=records%3Aread",
            )))
            .unwrap();
        let resp = tokio::time::timeout(BOUND, client.request(req))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    };
    rotate().await;
    assert_eq!(auth.tokens(), 2);

    // One fetch: refused, a new token, retried.
    all_ok(&[fetch_body(&*c).await]);
    assert_eq!((auth.tokens(), auth.upstream()), (3, 3));

    // A hundred fetches refused at once still make one token request.
    rotate().await;
    all_ok(&fetch_many(&c, 100).await);
    assert_eq!(auth.tokens(), 5);
    // Each fetch sent the refused token at most once (those that started after it was
    // dropped waited for the new one).
    assert!((104..=203).contains(&auth.upstream()), "{}", auth.upstream());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_always_refuses_is_tried_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (auth, c, _) = oauth_setup(dir.path()).await;
    auth.always_refuse.store(true, Ordering::SeqCst);
    let e = fetch_body(&*c).await.unwrap_err();
    assert!(matches!(e, FetchError::Status(StatusCode::UNAUTHORIZED)), "{e:?}");
    assert_eq!((auth.tokens(), auth.upstream()), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_failure_is_a_credentials_error_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (auth, c, _) = oauth_setup(dir.path()).await;
    auth.refuse_client.store(true, Ordering::SeqCst);
    let e = fetch_body(&*c).await.unwrap_err();
    let FetchError::Credentials(m) = &e else {
        panic!("{e:?}")
    };
    assert!(m.contains("invalid_client"), "{m}");
    assert!(!e.to_string().contains("s3cret"), "{e}");
    assert_eq!(auth.upstream(), 0, "nothing is sent without a token");

    // The next fetch asks again (a failure is not cached).
    auth.refuse_client.store(false, Ordering::SeqCst);
    all_ok(&[fetch_body(&*c).await]);
    assert_eq!(auth.tokens(), 2);
}

#[test]
fn oauth2_settings_are_validated_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let problems = |body: &str| -> Vec<String> {
        source(dir.path(), body)
            .validate()
            .into_iter()
            .map(|(path, _)| path)
            .collect()
    };
    let base = "url = \"http://127.0.0.1:1/\"\n";
    assert_eq!(
        problems(&format!(
            "{base}[oauth2]\ntoken_url = \"http://127.0.0.1:2/token\"\nclient_id = \"g\"\nclient_secret = {{ file = \"missing\" }}\n"
        )),
        ["oauth2.client_secret"]
    );
    std::fs::write(dir.path().join("s"), "x").unwrap();
    assert_eq!(
        problems(&format!(
            "{base}[oauth2]\ntoken_url = \"https://127.0.0.1:2/token\"\nclient_id = \"\"\nclient_secret = {{ file = \"s\" }}\n"
        )),
        ["tls.ca", "oauth2.client_id"]
    );
    assert_eq!(
        problems(&format!(
            "{base}headers = [{{ name = \"authorization\", file = \"s\" }}]\n[oauth2]\ntoken_url = \"ftp://x/\"\nclient_id = \"g\"\nclient_secret = {{ file = \"s\" }}\n"
        )),
        ["oauth2.token_url", "headers[0]"]
    );
}
