//! A programmable upstream on loopback: serves the demo register, or misbehaves on request.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How the upstream behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Serve the sample register.
    Good = 0,
    /// Answer after 5 s.
    Slow = 1,
    /// Start a valid array, then send invalid JSON in a later chunk.
    BrokenMidStream = 2,
    /// Answer 500.
    Error = 3,
    /// One chunk holding a valid first record and then invalid JSON, sent at once.
    BrokenInFirstChunk = 4,
    /// Serve the sample register only with `Authorization: Bearer s3cret` (401 otherwise).
    RequireToken = 5,
}

/// The upstream's handle.
pub struct Upstream {
    /// Bound address.
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    /// Changes behaviour for the following requests.
    pub fn set_mode(&self, m: Mode) {
        self.mode.store(m as u8, Ordering::SeqCst);
    }

    /// Starts on a free loopback port, serving the demo register through the sample source.
    pub async fn start() -> Upstream {
        let sample = sluice::demo::source::SampleSource::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let sample_addr = sample.addr;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(0));
        let m = mode.clone();
        let task = tokio::spawn(async move {
            let _sample = sample;
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let m = m.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let mode = m.load(Ordering::SeqCst);
                        async move { Ok::<_, Infallible>(answer(mode, sample_addr, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Upstream { addr, mode, task }
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn answer(mode: u8, sample: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    match mode {
        1 => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Response::new(Full::new(Bytes::from_static(b"[]")).boxed())
        }
        2 => {
            let chunks: Vec<Result<Frame<Bytes>, Infallible>> = vec![
                Ok(Frame::data(Bytes::from_static(
                    br#"[{"id":"SH-1","district":"Huangpu","adopter_mobile":"13812345678","notes":"ok"},"#,
                ))),
                Ok(Frame::data(Bytes::from_static(
                    br#"{"id":"SH-2","adopter_mobile":"13987654321" "notes": oops}]"#,
                ))),
            ];
            let stream = futures_stream(chunks);
            Response::new(StreamBody::new(stream).boxed())
        }
        4 => Response::new(
            Full::new(Bytes::from_static(
                br#"[{"id":"SH-1","district":"Huangpu","adopter_mobile":"13812345678","notes":"ok"},{"id":"SH-2" oops}]"#,
            ))
            .boxed(),
        ),
        3 => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"boom")).boxed());
            *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
        5 if req.headers().get("authorization").is_none_or(|v| v != "Bearer s3cret") => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"unauthorized")).boxed());
            *r.status_mut() = http::StatusCode::UNAUTHORIZED;
            r
        }
        _ => proxy_to_sample(sample, req).await,
    }
}

fn futures_stream(
    chunks: Vec<Result<Frame<Bytes>, Infallible>>,
) -> impl futures_core_stream::Stream<Item = Result<Frame<Bytes>, Infallible>> {
    futures_core_stream::iter_delayed(chunks, Duration::from_millis(50))
}

async fn proxy_to_sample(sample: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let tcp = tokio::net::TcpStream::connect(sample).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let uri = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let r = send
        .send_request(
            Request::get(uri)
                .header("host", "sample")
                .body(http_body_util::Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let (parts, body) = r.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    Response::from_parts(parts, Full::new(bytes).boxed())
}

/// A tiny delayed stream, so the broken chunk arrives after the first is sent.
mod futures_core_stream {
    pub use futures_util::Stream;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    pub struct Delayed<T> {
        items: std::collections::VecDeque<T>,
        delay: Duration,
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    }

    pub fn iter_delayed<T: Unpin>(items: Vec<T>, delay: Duration) -> Delayed<T> {
        Delayed {
            items: items.into(),
            delay,
            sleep: None,
        }
    }

    impl<T: Unpin> Stream for Delayed<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            if let Some(s) = self.sleep.as_mut() {
                if s.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.sleep = None;
            }
            let item = self.items.pop_front();
            if item.is_some() {
                let d = self.delay;
                self.sleep = Some(Box::pin(tokio::time::sleep(d)));
            }
            Poll::Ready(item)
        }
    }

    use std::future::Future;
}
