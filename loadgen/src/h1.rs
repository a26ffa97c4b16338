//! The hot-path client for plain-http targets: HTTP/1.1 keep-alive connections driven by
//! hyper's low-level `client::conn::http1`, a LIFO pool of idle ones, and each order type's
//! request head built once and cloned. Profiling showed reqwest (kept for https and HTTP/2)
//! spending most of a request's user CPU on work a load generator does not need per request:
//! re-parsing the URL (IDNA included), the redirect and proxy policies, merging default
//! headers, and a general pool keyed by scheme and host.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderMap, HeaderValue, HOST, USER_AGENT};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use order_server::contract::OrderType;
use reqwest::Url;
use tokio::net::TcpStream;

use crate::client::{ClientError, ClientOptions, OutcomeClass};

type Conn = SendRequest<Empty<Bytes>>;

#[derive(Debug)]
pub struct Pool {
    /// Where to connect: a name is resolved again for every new connection, so a Service
    /// whose address changes is followed the way a browser or reqwest would.
    host: url::Host<String>,
    port: u16,
    heads: [(Uri, HeaderMap); 2],
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
    timeout: Duration,
    connect_timeout: Duration,
}

enum Failure {
    Connect,
    Other,
}

impl Pool {
    /// `urls` are the two order URLs (http scheme, already validated).
    pub fn new(urls: &[Url; 2], opts: &ClientOptions) -> Result<Self, ClientError> {
        let base = &urls[0];
        let target_err = |m: &str| ClientError::Target(base.to_string(), m.into());
        let host = base
            .host()
            .map(|h| h.to_owned())
            .ok_or_else(|| target_err("no host"))?;
        let port = base.port_or_known_default().unwrap_or(80);
        let authority = match base.port() {
            Some(p) => format!("{}:{p}", base.host_str().unwrap_or_default()),
            None => base.host_str().unwrap_or_default().to_owned(),
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            HOST,
            HeaderValue::from_str(&authority).map_err(|_| target_err("invalid host"))?,
        );
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(crate::client::USER_AGENT),
        );
        for (k, v) in &opts.headers {
            let (name, value) = crate::client::header_pair(k, v)?;
            if name == HOST {
                headers.insert(name, value); // a Host override replaces, never doubles
            } else {
                headers.append(name, value);
            }
        }
        let head = |u: &Url| -> Result<(Uri, HeaderMap), ClientError> {
            let path = match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_owned(),
            };
            let uri = Uri::try_from(path).map_err(|e| target_err(&e.to_string()))?;
            Ok((uri, headers.clone()))
        };
        Ok(Pool {
            host,
            port,
            heads: [head(&urls[0])?, head(&urls[1])?],
            idle: Mutex::new(Vec::new()),
            max_idle: opts.max_idle,
            timeout: opts.timeout,
            connect_timeout: opts.timeout.min(Duration::from_secs(5)),
        })
    }

    /// Sends one order, reads the whole answer, and classifies it.
    pub async fn send(&self, t: OrderType) -> OutcomeClass {
        match tokio::time::timeout(self.timeout, self.exchange(t)).await {
            Err(_) => OutcomeClass::Timeout,
            Ok(Ok(status)) => OutcomeClass::from_status(status),
            Ok(Err(Failure::Connect)) => OutcomeClass::ConnectError,
            Ok(Err(Failure::Other)) => OutcomeClass::Other,
        }
    }

    async fn exchange(&self, t: OrderType) -> Result<u16, Failure> {
        let mut req = self.request(t);
        let mut fresh = false;
        loop {
            let mut conn = match self.checkout().await {
                Some(c) => c,
                None => {
                    fresh = true;
                    self.connect().await?
                }
            };
            let resp = match conn.try_send_request(req).await {
                Ok(r) => r,
                // A kept-alive connection the server had already closed: the request never
                // left, so it goes again once, on a new connection (as browsers and reqwest do).
                Err(mut e) => match e.take_message() {
                    Some(back) if !fresh => {
                        req = back;
                        fresh = true;
                        continue;
                    }
                    _ => return Err(Failure::Other),
                },
            };
            let status = resp.status().as_u16();
            let mut body = resp.into_body();
            while let Some(frame) = body.frame().await {
                frame.map_err(|_| Failure::Other)?;
            }
            self.checkin(conn);
            return Ok(status);
        }
    }

    fn request(&self, t: OrderType) -> Request<Empty<Bytes>> {
        let (uri, headers) = &self.heads[t.index()];
        let mut req = Request::new(Empty::new());
        *req.uri_mut() = uri.clone();
        *req.headers_mut() = headers.clone();
        req
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used idle connection that is still open and ready.
    async fn checkout(&self) -> Option<Conn> {
        loop {
            let mut c = self.lock().pop()?;
            if c.ready().await.is_ok() {
                return Some(c);
            }
        }
    }

    fn checkin(&self, c: Conn) {
        let mut idle = self.lock();
        if idle.len() < self.max_idle && !c.is_closed() {
            idle.push(c);
        }
    }

    async fn connect(&self) -> Result<Conn, Failure> {
        let connect = async {
            match &self.host {
                url::Host::Domain(n) => TcpStream::connect((n.as_str(), self.port)).await,
                url::Host::Ipv4(a) => TcpStream::connect((*a, self.port)).await,
                url::Host::Ipv6(a) => TcpStream::connect((*a, self.port)).await,
            }
        };
        let stream = match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(s)) => s,
            Ok(Err(_)) | Err(_) => return Err(Failure::Connect),
        };
        let _ = stream.set_nodelay(true);
        let (send, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| Failure::Other)?;
        // The connection task ends by itself when its last `SendRequest` is dropped or the
        // peer closes.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(send)
    }
}
