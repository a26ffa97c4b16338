//! The baseline the order server's throughput and instructions per request are compared
//! with: hyper 1.x through hyper-util's auto builder, as the order server uses it, answering
//! every request with the order server's small JSON body and nothing else. Exits cleanly on
//! SIGTERM or Ctrl-C, so callgrind writes its profile.
//!
//!     bare-hyper 127.0.0.1:5101

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

const BODY: &[u8] =
    br#"{"success":true,"order_id":0,"order_type":"food","amount":74.24,"items":2}"#;

async fn answer(_req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut r = Response::new(Full::new(Bytes::from_static(BODY)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

fn main() -> std::process::ExitCode {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5101".into());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(&addr)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {addr}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(addr: &str) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    eprintln!("bare-hyper listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = builder
            .serve_connection(TokioIo::new(stream), hyper::service::service_fn(answer))
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}
