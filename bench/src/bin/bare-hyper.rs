//! The baseline the order server's throughput and instructions per request are compared
//! with: hyper 1.x through hyper-util's auto builder, as the order server uses it, answering
//! every request with the order server's small JSON body and nothing else. Exits cleanly on
//! SIGTERM or Ctrl-C, so callgrind writes its profile. With a second argument it also notes
//! every request's arrival time and writes them to that file at exit (microseconds since
//! start, one per line): the harness checks the load generator's rate and smoothness at the
//! receiving end, where it matters, not by the generator's own account.
//!
//!     bare-hyper 127.0.0.1:5101 [ARRIVALS_FILE]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Instant;

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

/// Arrival times in microseconds since start; only kept when asked for, so the measured
/// baseline is not slowed by it.
#[derive(Debug)]
struct Arrivals {
    start: Instant,
    times: Mutex<Vec<u64>>,
}

impl Arrivals {
    fn note(&self) {
        let us = self.start.elapsed().as_micros() as u64;
        self.times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(us);
    }

    fn write(&self, path: &str) -> std::io::Result<()> {
        use std::io::Write;
        let times = self.times.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        for t in times.iter() {
            writeln!(out, "{t}")?;
        }
        out.flush()
    }
}

fn main() -> std::process::ExitCode {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5101".into());
    let arrivals_file = std::env::args().nth(2);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let arrivals = arrivals_file.as_ref().map(|_| {
        Arc::new(Arrivals {
            start: Instant::now(),
            times: Mutex::new(Vec::with_capacity(1 << 20)),
        })
    });
    match runtime.block_on(serve(&addr, arrivals.clone())) {
        Ok(()) => match (arrivals, arrivals_file) {
            (Some(a), Some(path)) => match a.write(&path) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: writing arrivals to {path}: {e}");
                    std::process::ExitCode::FAILURE
                }
            },
            _ => std::process::ExitCode::SUCCESS,
        },
        Err(e) => {
            eprintln!("error: {addr}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(addr: &str, arrivals: Option<Arc<Arrivals>>) -> std::io::Result<()> {
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
        let io = TokioIo::new(stream);
        match &arrivals {
            None => {
                let conn = builder
                    .serve_connection(io, hyper::service::service_fn(answer))
                    .into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            Some(a) => {
                let a = Arc::clone(a);
                let service = hyper::service::service_fn(move |req| {
                    a.note();
                    answer(req)
                });
                let conn = builder.serve_connection(io, service).into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        }
    }
}
