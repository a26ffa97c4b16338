//! What the test servers share: reading one request head at a time off a connection, a raw
//! TCP server built on it, and the real order server on loopback.

// Each test binary includes this module and uses only some of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// The next whole request head on `s` (bytes past it stay in `buf`); `None` once the peer
/// closes or the read fails.
pub async fn next_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(buf.drain(..end + 4).collect());
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Answers every request head on `listener` with `answer` after `delay`, handing the head to
/// `on_head` first; with `close_after` it closes the connection after each answer without
/// saying so (no `Connection: close`).
pub fn serve_raw(
    listener: TcpListener,
    answer: &'static [u8],
    delay: Duration,
    close_after: bool,
    on_head: impl Fn(Vec<u8>) + Send + Sync + 'static,
) {
    let on_head = Arc::new(on_head);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let on_head = Arc::clone(&on_head);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some(head) = next_head(&mut s, &mut buf).await {
                    on_head(head);
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    if s.write_all(answer).await.is_err() || close_after {
                        return;
                    }
                }
            });
        }
    });
}

/// The order server with the simulation off on 127.0.0.1:0: its base URL and a stop switch.
pub async fn order_server() -> (String, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut cfg = order_server::Config::default();
    cfg.sim.enabled = false;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(order_server::serve(listener, None, cfg, async {
        let _ = stopped.await;
    }));
    (format!("http://{addr}"), stop)
}

/// A process's resident set size, from /proc.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
