//! The `healthcheck` subcommand: one plain HTTP/1.0 GET (of `/healthz` by default) over TCP,
//! so a container image without curl or wget can still have a health check; with `--path
//! /metrics` it also probes the load generator's metrics endpoint, which ships in the same
//! image. It reads the status line only, into a small fixed buffer, so no answer (an endless
//! body, a huge one, a kept-alive connection) can make it wait or grow; only 2xx is healthy.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most the probe reads: a status line longer than this is not HTTP.
const MAX_STATUS_LINE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("no status line from {0} within {1:?}")]
    Timeout(SocketAddr, Duration),
    #[error("cannot reach {0}: {1}")]
    Io(SocketAddr, std::io::Error),
    #[error("{0} answered {1:?}, expected a 2xx status")]
    Status(SocketAddr, String),
    #[error("{0} closed the connection before a status line")]
    Closed(SocketAddr),
    #[error("{0} sent {MAX_STATUS_LINE} bytes without a status line: not HTTP")]
    NotHttp(SocketAddr),
}

/// Returns `Ok` if `GET path` on `addr` answers a 2xx status within `timeout`.
pub async fn check(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(), HealthError> {
    let probe = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(
            format!("GET {path} HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut buf = [0u8; MAX_STATUS_LINE];
        let mut filled = 0;
        loop {
            if let Some(end) = buf[..filled].windows(2).position(|w| w == b"\r\n") {
                return Ok(Some(String::from_utf8_lossy(&buf[..end]).into_owned()));
            }
            if filled == buf.len() {
                return Ok(None);
            }
            match s.read(&mut buf[filled..]).await? {
                0 => return Ok(Some(String::from_utf8_lossy(&buf[..filled]).into_owned())),
                n => filled += n,
            }
        }
    };
    let line = tokio::time::timeout(timeout, probe)
        .await
        .map_err(|_| HealthError::Timeout(addr, timeout))?
        .map_err(|e| HealthError::Io(addr, e))?
        .ok_or(HealthError::NotHttp(addr))?;
    if line.is_empty() {
        return Err(HealthError::Closed(addr));
    }
    let mut parts = line.split_whitespace();
    let healthy = parts.next().is_some_and(|v| v.starts_with("HTTP/"))
        && parts
            .next()
            .is_some_and(|code| code.len() == 3 && code.starts_with('2'));
    if healthy {
        Ok(())
    } else {
        Err(HealthError::Status(addr, line))
    }
}
