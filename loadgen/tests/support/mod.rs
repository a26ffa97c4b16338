//! What the raw TCP test servers share: reading one request head at a time off a connection.

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

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
