//! What the engine sends and where: the target's host and port, and each order type's whole
//! request, built once per run so a send is one write of ready bytes.

use std::time::Duration;

use reqwest::Url;

use crate::client::ClientOptions;
use crate::endpoint::{header_pair, EndpointError};

/// What the engine sends and where: built once per run from the order URLs and options.
#[derive(Debug)]
pub struct Target {
    pub(super) host: url::Host<String>,
    pub(super) port: u16,
    /// Each order type's whole request, bytes ready for the wire.
    pub(super) requests: [Vec<u8>; 2],
    pub(super) timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) max_conns: usize,
}

impl Target {
    /// `urls` are the two order URLs (http scheme, already validated).
    pub fn new(
        urls: &[Url; 2],
        opts: &ClientOptions,
        max_conns: usize,
    ) -> Result<Self, EndpointError> {
        let base = &urls[0];
        let target_err = |m: &str| EndpointError::Target(base.to_string(), m.into());
        let host = base
            .host()
            .map(|h| h.to_owned())
            .ok_or_else(|| target_err("no host"))?;
        let port = base.port_or_known_default().unwrap_or(80);
        let authority = match base.port() {
            Some(p) => format!("{}:{p}", base.host_str().unwrap_or_default()),
            None => base.host_str().unwrap_or_default().to_owned(),
        };
        let mut host_header = authority;
        let mut extra = String::new();
        for (k, v) in &opts.headers {
            // Validated like every other transport does; the typed pair also rejects CR/LF.
            let (name, _) = header_pair(k, v)?;
            if name == hyper::header::HOST {
                host_header = v.clone(); // a Host override replaces, never doubles
            } else {
                extra.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        let request = |u: &Url| {
            let path = match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_owned(),
            };
            format!(
                "GET {path} HTTP/1.1\r\nhost: {host_header}\r\nuser-agent: {}\r\n{extra}\r\n",
                crate::client::USER_AGENT
            )
            .into_bytes()
        };
        Ok(Target {
            host,
            port,
            requests: [request(&urls[0]), request(&urls[1])],
            timeout: opts.timeout,
            connect_timeout: opts.timeout.min(Duration::from_secs(5)),
            max_conns: max_conns.max(1),
        })
    }
}
