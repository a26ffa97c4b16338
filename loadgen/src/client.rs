//! How an order is sent off the paced engine's path: one shared reqwest client (rustls with
//! an opt-out of verification and the `--cacert` certificates trusted as [`trust`] says,
//! optional HTTP/2) with keep-alive, the timeout and extra headers, for https, `--http2` and
//! plain http off Linux; the order URLs; and a TLS check before the run.

use std::sync::Arc;
use std::time::Duration;

use order_server::contract::OrderType;
use reqwest::header::HeaderMap;
use reqwest::{Client, Url};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::endpoint::{header_pair, parse_base, EndpointError};
use crate::outcome::OutcomeClass;
use crate::redact::{capped, quoted, without_credentials};

pub mod trust;

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub timeout: Duration,
    pub headers: Vec<(String, String)>,
    pub insecure: bool,
    /// The certificates of `--cacert` (DER): trusted as CAs, and as the server's own
    /// certificate when it is one of them byte for byte (see [`trust`]).
    pub ca_certs: Vec<CertificateDer<'static>>,
    pub http2: bool,
    pub max_idle: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("--target {}: {}", quoted(&without_credentials(.0)), .1)]
    Url(String, #[source] url::ParseError),
    #[error("building the HTTP client failed: {0}")]
    Build(#[from] reqwest::Error),
    #[error("--cacert {}: {}", capped(.0), .1)]
    CaCert(String, String),
    #[error("--target {0}: the TLS handshake failed: {1}")]
    Tls(String, String),
}

/// The `User-Agent` every order carries.
pub const USER_AGENT: &str = concat!("order-metrics-loadgen/", env!("CARGO_PKG_VERSION"));

/// Sends orders to one target. Cloned into every request task, so a clone is one reference
/// count rather than copies of the URLs.
#[derive(Debug, Clone)]
pub struct OrderClient(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    client: Client,
    urls: [Url; 2],
    /// Plain http over HTTP/1.1: on Linux the paced engine (`engine`) sends these itself.
    plain: bool,
    /// What to do about a refused certificate, given what was trusted.
    tls_hint: &'static str,
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
            food.map_err(|e| ClientError::Url(target.into(), e))?,
            clothing.map_err(|e| ClientError::Url(target.into(), e))?,
        ];
        let plain = urls[0].scheme() == "http" && !opts.http2;
        let client = build_client(opts)?;
        let tls_hint = if opts.ca_certs.is_empty() {
            "Trust it with --cacert FILE (the server's own certificate, self-signed, or the CA that signed it), or skip verification with --insecure (test clusters only)"
        } else {
            "The --cacert file holds neither this certificate nor a CA that signed it"
        };
        Ok(OrderClient(Arc::new(Inner {
            client,
            urls,
            plain,
            tls_hint,
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
            Some((why, untrusted)) => Err(ClientError::Tls(
                url.origin().ascii_serialization(),
                if untrusted {
                    format!("{why}. {}", self.0.tls_hint)
                } else {
                    why
                },
            )),
            None => Ok(()),
        }
    }
}

/// What a TLS failure was, in words, from the error's causes (rustls's own messages: "invalid
/// peer certificate: …", "received fatal alert: …"), and whether it was an untrusted issuer
/// (which `--cacert` can fix); `None` if the error was not about TLS. Only the causes are read,
/// never the request's URL, whose host or path could hold any word.
fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<(String, bool)> {
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
    if tls.contains("UnknownIssuer") {
        let why = "the server's certificate is not trusted (unknown issuer, e.g. self-signed)";
        return Some((why.into(), true));
    }
    if tls.contains("CaUsedAsEndEntity") {
        let why = "the server's certificate is not trusted (a CA certificate serving as its own, e.g. a self-signed test certificate)";
        return Some((why.into(), true));
    }
    let why = if tls.contains("NotValidForName") {
        "the server's certificate is not valid for this host name".into()
    } else if tls.contains("Expired") {
        "the server's certificate has expired".into()
    } else if tls.contains("NotValidYet") {
        "the server's certificate is not valid yet".into()
    } else {
        tls.clone()
    };
    Some((why, false))
}

/// Reads `--cacert`: one or more PEM certificates, each usable as a trust anchor.
pub fn read_ca_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let err = |m: String| ClientError::CaCert(path.display().to_string(), m);
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in it".into()));
    }
    trust::client_config(&certs, false).map_err(err)?;
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
    if !opts.insecure && !opts.ca_certs.is_empty() {
        let tls = trust::client_config(&opts.ca_certs, opts.http2)
            .map_err(|e| ClientError::CaCert("(certificates)".into(), e))?;
        b = b.use_preconfigured_tls(tls);
    }
    if opts.http2 {
        b = b.http2_prior_knowledge();
    }
    Ok(b.build()?)
}
