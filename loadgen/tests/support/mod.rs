//! What the test servers share: reading one request head at a time off a connection, a raw
//! TCP server built on it, and the workspace's test kit (the real order server on loopback).

// Each test binary includes this module and uses only some of it.
#![allow(dead_code, unused_imports)]

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub use order_server::test_kit::{quiet_config, rss_bytes, wait_for_exit, TestServer};

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

/// The order server with the simulation off on 127.0.0.1:0: its base URL and the server.
pub async fn order_server() -> (String, TestServer) {
    let server = TestServer::start(quiet_config()).await;
    (format!("http://{}", server.addr), server)
}
