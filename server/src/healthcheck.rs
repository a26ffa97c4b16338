//! The `healthcheck` subcommand: one plain HTTP/1.0 GET (of `/healthz` by default) over TCP,
//! so a container image without curl or wget can still have a health check; with `--path
//! /metrics` it also probes the load generator's metrics endpoint, which ships in the same
//! image.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("no answer from {0} within {1:?}")]
    Timeout(SocketAddr, Duration),
    #[error("cannot reach {0}: {1}")]
    Io(SocketAddr, std::io::Error),
    #[error("{0} answered {1:?}, expected 200")]
    Status(SocketAddr, String),
}

/// Returns `Ok` if `GET path` on `addr` answers 200 within `timeout`.
pub async fn check(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(), HealthError> {
    let probe = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .await?;
        let mut head = Vec::with_capacity(256);
        s.read_to_end(&mut head).await?;
        Ok::<_, std::io::Error>(head)
    };
    let head = tokio::time::timeout(timeout, probe)
        .await
        .map_err(|_| HealthError::Timeout(addr, timeout))?
        .map_err(|e| HealthError::Io(addr, e))?;
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or_default().to_string();
    if line.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(HealthError::Status(addr, line))
    }
}
