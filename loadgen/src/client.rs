//! How a request is sent off the paced engine's path: one shared reqwest client (rustls with an
//! opt-out of verification, optional HTTP/2) with keep-alive, the timeout and extra headers,
//! for https, `--http2` and plain http off Linux; the order URLs,
//! classification of every outcome into a closed set of classes, and the admin client that
//! switches server faults on for scenario phases.

use std::sync::Arc;
use std::time::Duration;

use order_server::contract::OrderType;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Url};
use serde::Serialize;

/// What happened to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeClass {
    #[serde(rename = "2xx")]
    Success,
    #[serde(rename = "4xx")]
    ClientError,
    #[serde(rename = "5xx")]
    ServerError,
    Timeout,
    ConnectError,
    Other,
}

impl OutcomeClass {
    pub const ALL: [OutcomeClass; 6] = [
        OutcomeClass::Success,
        OutcomeClass::ClientError,
        OutcomeClass::ServerError,
        OutcomeClass::Timeout,
        OutcomeClass::ConnectError,
        OutcomeClass::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeClass::Success => "2xx",
            OutcomeClass::ClientError => "4xx",
            OutcomeClass::ServerError => "5xx",
            OutcomeClass::Timeout => "timeout",
            OutcomeClass::ConnectError => "connect_error",
            OutcomeClass::Other => "other",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the request reached the server and its latency means something.
    pub fn is_timed(self) -> bool {
        !matches!(self, OutcomeClass::ConnectError)
    }

    pub fn from_status(status: u16) -> Self {
        match status {
            200..=299 => OutcomeClass::Success,
            400..=499 => OutcomeClass::ClientError,
            500..=599 => OutcomeClass::ServerError,
            _ => OutcomeClass::Other,
        }
    }

    pub fn from_error(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            OutcomeClass::Timeout
        } else if e.is_connect() {
            OutcomeClass::ConnectError
        } else {
            OutcomeClass::Other
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub timeout: Duration,
    pub headers: Vec<(String, String)>,
    pub insecure: bool,
    /// Extra trusted roots (`--cacert`), PEM.
    pub ca_certs: Vec<reqwest::Certificate>,
    pub http2: bool,
    pub max_idle: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--target {0:?}: {1}")]
    Target(String, String),
    #[error("--header {0:?}: {1}")]
    Header(String, String),
    #[error("building the HTTP client failed: {0}")]
    Build(#[from] reqwest::Error),
    #[error("--cacert {0}: {1}")]
    CaCert(String, String),
    #[error("--target {0}: the TLS handshake failed: {1}. For a test cluster with a self-signed certificate use --insecure; for a private CA, --cacert FILE")]
    Tls(String, String),
}

/// The `User-Agent` every order carries.
pub const USER_AGENT: &str = concat!("order-metrics-loadgen/", env!("CARGO_PKG_VERSION"));

/// Sends orders to one target. Cloned into every request task, so a clone is one reference
/// count (the URLs alone were two string copies per request).
#[derive(Debug, Clone)]
pub struct OrderClient(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    client: Client,
    urls: [Url; 2],
    /// Plain http over HTTP/1.1: on Linux the paced engine (`engine`) sends these itself.
    plain: bool,
}

impl OrderClient {
    pub fn new(target: &str, opts: &ClientOptions) -> Result<Self, ClientError> {
        let base = parse_base(target)?;
        let urls = OrderType::ALL.map(|t| {
            let path = match t {
                OrderType::Food => "makeFoodOrder",
                OrderType::Clothing => "makeClothingOrder",
            };
            base.join(path)
        });
        let [food, clothing] = urls;
        let urls = [
            food.map_err(|e| ClientError::Target(target.into(), e.to_string()))?,
            clothing.map_err(|e| ClientError::Target(target.into(), e.to_string()))?,
        ];
        let plain = urls[0].scheme() == "http" && !opts.http2;
        let client = build_client(opts)?;
        Ok(OrderClient(Arc::new(Inner {
            client,
            urls,
            plain,
        })))
    }

    /// Sends one order and classifies the outcome. The body is read in full so the
    /// connection goes back to the pool.
    pub async fn send(&self, t: OrderType) -> OutcomeClass {
        send_reqwest(&self.0.client, &self.0.urls[t.index()]).await
    }

    /// The order URLs when they are plain http over HTTP/1.1 (the paced engine's case).
    pub fn plain_urls(&self) -> Option<&[Url; 2]> {
        self.0.plain.then_some(&self.0.urls)
    }

    pub fn url(&self, t: OrderType) -> &Url {
        &self.0.urls[t.index()]
    }

    /// For an https target, one request before the run: a certificate or handshake problem
    /// is then one clear error at start, not every request counted as a connection failure.
    /// Any other failure (refused, timed out, an error status) is left to the run to count.
    pub async fn check_tls(&self) -> Result<(), ClientError> {
        let url = &self.0.urls[0];
        if url.scheme() != "https" {
            return Ok(());
        }
        let Err(e) = self.0.client.head(url.clone()).send().await else {
            return Ok(());
        };
        match tls_failure(&e) {
            Some(why) => Err(ClientError::Tls(url.origin().ascii_serialization(), why)),
            None => Ok(()),
        }
    }
}

/// What a TLS failure was, in words, from the error's causes (rustls's own messages: "invalid
/// peer certificate: …", "received fatal alert: …"); `None` if the error was not about TLS.
/// Only the causes are read, never the request's URL, whose host or path could hold any word.
fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut causes = Vec::new();
    let mut cause = e.source();
    while let Some(c) = cause {
        causes.push(c.to_string());
        cause = c.source();
    }
    let tls = causes.iter().find(|c| {
        c.starts_with("invalid peer certificate")
            || c.starts_with("received fatal alert")
            || c.starts_with("peer is incompatible")
            || c.starts_with("peer misbehaved")
    })?;
    Some(if tls.contains("UnknownIssuer") {
        "the server's certificate is not trusted (unknown issuer, e.g. self-signed)".into()
    } else if tls.contains("NotValidForName") {
        "the server's certificate is not valid for this host name".into()
    } else if tls.contains("Expired") {
        "the server's certificate has expired".into()
    } else {
        tls.clone()
    })
}

/// Reads `--cacert`: one or more PEM certificates.
pub fn read_ca_certs(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let err = |m: String| ClientError::CaCert(path.display().to_string(), m);
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in it".into()));
    }
    Ok(certs)
}

async fn send_reqwest(client: &Client, url: &Url) -> OutcomeClass {
    match client.get(url.clone()).send().await {
        Ok(resp) => {
            let class = OutcomeClass::from_status(resp.status().as_u16());
            match resp.bytes().await {
                Ok(_) => class,
                Err(e) => OutcomeClass::from_error(&e),
            }
        }
        Err(e) => OutcomeClass::from_error(&e),
    }
}

/// Parses a base URL, requiring http(s) and a host, and making sure it ends with `/`.
pub fn parse_base(target: &str) -> Result<Url, ClientError> {
    let err = |m: &str| ClientError::Target(target.into(), m.into());
    let mut url = Url::parse(target).map_err(|e| err(&format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(err("scheme must be http or https"));
    }
    if url.host().is_none() {
        return Err(err("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(err(
            "user:password@ in the URL is not sent; pass --header \"Authorization: Basic <base64 of user:password>\" instead",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err("give a base URL without ?query or #fragment"));
    }
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    Ok(url)
}

/// Resolves the target's host once before the run, so a name that does not resolve is one
/// clear error at start-up instead of thousands of connect errors.
pub async fn resolve(target: &str) -> Result<(), ClientError> {
    let url = parse_base(target)?;
    let Some(host) = url.domain().map(str::to_owned) else {
        return Ok(()); // an IP address: nothing to resolve
    };
    let port = url.port_or_known_default().unwrap_or(80);
    let found = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map(|addrs| addrs.count());
    match found {
        Ok(n) if n > 0 => Ok(()),
        Ok(_) => Err(ClientError::Target(
            target.into(),
            format!("host {host:?} resolves to no address"),
        )),
        Err(e) => Err(ClientError::Target(
            target.into(),
            format!("cannot resolve host {host:?}: {e}"),
        )),
    }
}

pub fn parse_header(raw: &str) -> Result<(String, String), ClientError> {
    let err = |m: &str| ClientError::Header(raw.into(), m.into());
    let (k, v) = raw
        .split_once(':')
        .ok_or_else(|| err("expected NAME:VALUE"))?;
    let (k, v) = (k.trim(), v.trim());
    HeaderName::from_bytes(k.as_bytes()).map_err(|_| err("invalid header name"))?;
    HeaderValue::from_str(v).map_err(|_| err("invalid header value"))?;
    Ok((k.to_string(), v.to_string()))
}

/// One `--header` as a typed name and value.
pub fn header_pair(k: &str, v: &str) -> Result<(HeaderName, HeaderValue), ClientError> {
    let name = HeaderName::from_bytes(k.as_bytes())
        .map_err(|_| ClientError::Header(k.into(), "invalid header name".into()))?;
    let value = HeaderValue::from_str(v)
        .map_err(|_| ClientError::Header(k.into(), "invalid header value".into()))?;
    Ok((name, value))
}

fn build_client(opts: &ClientOptions) -> Result<Client, ClientError> {
    let mut headers = HeaderMap::new();
    for (k, v) in &opts.headers {
        let (name, value) = header_pair(k, v)?;
        headers.append(name, value);
    }
    let mut b = Client::builder()
        .default_headers(headers)
        .timeout(opts.timeout)
        .connect_timeout(opts.timeout.min(Duration::from_secs(5)))
        .pool_max_idle_per_host(opts.max_idle)
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .danger_accept_invalid_certs(opts.insecure)
        .user_agent(USER_AGENT);
    for cert in &opts.ca_certs {
        b = b.add_root_certificate(cert.clone());
    }
    if opts.http2 {
        b = b.http2_prior_knowledge();
    }
    Ok(b.build()?)
}

/// Switches faults on at the server's admin API for scenario phases.
#[derive(Debug, Clone)]
pub struct AdminClient {
    client: Client,
    url: Url,
    token: Option<String>,
}

impl AdminClient {
    pub fn new(admin: &str, token: Option<String>) -> Result<Self, ClientError> {
        let url = parse_base(admin)
            .map_err(|e| ClientError::Target(admin.into(), format!("--admin-url: {e}")))?
            .join("admin/faults")
            .map_err(|e| ClientError::Target(admin.into(), e.to_string()))?;
        let client = Client::builder().timeout(Duration::from_secs(5)).build()?;
        Ok(AdminClient { client, url, token })
    }

    /// Lists the active faults: proves the API is reachable and the token accepted.
    pub async fn check(&self) -> Result<(), String> {
        let mut req = self.client.get(self.url.clone());
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| format!("{}: {e}", self.url))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("{} answered {}", self.url, resp.status()))
        }
    }

    /// Posts one fault; the error carries the server's reason.
    pub async fn inject(&self, fault: &serde_json::Value) -> Result<(), String> {
        let mut req = self.client.post(self.url.clone()).json(fault);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| format!("{}: {e}", self.url))?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            let body = resp.text().await.unwrap_or_default();
            Err(format!("{} answered {status}: {body}", self.url))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_normalised_and_checked() {
        assert_eq!(
            parse_base("http://svc:5001").expect("ok").as_str(),
            "http://svc:5001/"
        );
        assert_eq!(
            parse_base("https://h/shop")
                .expect("ok")
                .join("makeFoodOrder")
                .expect("join")
                .as_str(),
            "https://h/shop/makeFoodOrder"
        );
        for bad in [
            "svc:5001",
            "ftp://h/",
            "http://",
            "http://h/?a=1",
            "not a url",
        ] {
            let e = parse_base(bad).expect_err(bad).to_string();
            assert!(e.contains("--target"), "{bad}: {e}");
        }
    }

    #[test]
    fn headers_are_validated() {
        assert_eq!(
            parse_header("Authorization: Bearer x:y").expect("ok"),
            ("Authorization".into(), "Bearer x:y".into())
        );
        assert!(parse_header("no-colon").is_err());
        assert!(parse_header("bad name: v").is_err());
        assert!(parse_header("X: a\nb").is_err());
    }

    #[test]
    fn status_classes() {
        assert_eq!(OutcomeClass::from_status(204), OutcomeClass::Success);
        assert_eq!(OutcomeClass::from_status(404), OutcomeClass::ClientError);
        assert_eq!(OutcomeClass::from_status(503), OutcomeClass::ServerError);
        assert_eq!(OutcomeClass::from_status(302), OutcomeClass::Other);
    }
}
