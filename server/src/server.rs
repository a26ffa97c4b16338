//! Connection handling: the accept loops for the public and admin listeners (accept errors are
//! logged and retried with back-off, never fatal), HTTP/1.1 and h2c per connection, the exporter
//! upkeep task, and graceful shutdown: turn not-ready, keep serving new connections for the
//! shutdown delay, stop accepting, let in-flight requests finish within the drain time.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::app::{App, Port};
use crate::config::Config;
use crate::watchdog::{self, Activity};

/// Largest request head accepted; a larger one is answered 431 by hyper.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("building the Prometheus recorder failed: {0}")]
    Recorder(#[from] metrics_exporter_prometheus::BuildError),
}

/// What a finished [`serve`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Connections still open when the drain time ran out (0 = clean drain).
    pub connections_cut: usize,
}

/// Serves orders, metrics and health on `listener` (and the fault API on `admin`, if given)
/// until `shutdown` completes, then drains. Never binds by itself: tests pass a listener on
/// `127.0.0.1:0`.
pub async fn serve(
    listener: TcpListener,
    admin: Option<TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<ShutdownReport, ServeError> {
    let app = Arc::new(App::new(config)?);
    Ok(serve_app(app, listener, admin, shutdown).await)
}

/// Like [`serve`], for a caller that keeps a handle on the [`App`].
pub async fn serve_app(
    app: Arc<App>,
    listener: TcpListener,
    admin: Option<TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> ShutdownReport {
    let cfg = app.config().clone();
    let upkeep = tokio::spawn(upkeep_loop(Arc::clone(&app), cfg.upkeep_interval));
    let mut ports = Listening {
        public: Acceptor::new(listener, Port::Public),
        admin: admin.map(|l| Acceptor::new(l, Port::Admin)),
        builder: http_builder(),
        graceful: GracefulShutdown::new(),
        app: Arc::clone(&app),
        header_timeout: cfg.header_timeout,
    };

    app.set_ready(true);
    ports.serve_until(shutdown).await;
    // Not ready first, then keep serving for the shutdown delay: endpoints and load balancers
    // take a few seconds to stop sending new connections here, and those must not be refused.
    app.set_ready(false);
    if !cfg.shutdown_delay.is_zero() {
        tracing::info!(shutdown_delay = ?cfg.shutdown_delay, "not ready; still serving new connections");
        ports
            .serve_until(tokio::time::sleep(cfg.shutdown_delay))
            .await;
    }
    let Listening {
        public,
        admin,
        graceful,
        ..
    } = ports;
    drop(public);
    drop(admin);
    let open = graceful.count();
    tracing::info!(open_connections = open, drain_timeout = ?cfg.drain_timeout, "draining");
    let deadline = tokio::time::Instant::now() + cfg.drain_timeout;
    if open > 0 {
        // Closing an idle keep-alive connection races with a request the client is sending
        // on it at that moment, which then fails half-way. So first keep the connections a
        // little while: requests arriving on them are served with `Connection: close` (see
        // App::handle), and the clients move to new connections, which are refused cleanly.
        tokio::time::sleep((cfg.drain_timeout / 2).min(DRAIN_LINGER)).await;
    }
    let cut = tokio::select! {
        () = graceful.shutdown() => 0,
        () = tokio::time::sleep_until(deadline) => open.max(1),
    };
    upkeep.abort();
    if cut > 0 {
        tracing::warn!("drain time ran out; remaining connections are closed");
    } else {
        tracing::info!("drained; all in-flight requests answered");
    }
    ShutdownReport {
        connections_cut: cut,
    }
}

/// The status hyper answered a request it refused before any handler saw it (its `on_error`):
/// 431 for a head over [`MAX_HEADER_BYTES`] (a request line that long included), 400 for a
/// malformed head, and 414 should hyper ever call a URI too long (past 64 KiB, which the head
/// limit never lets through); `None` for errors hyper answers nothing to (an HTTP/2 preface
/// on an HTTP/1 parse, its own internal error) and for every other connection error. hyper
/// tells those kinds apart only in its messages.
fn rejected_status(e: &(dyn std::error::Error + 'static)) -> Option<u16> {
    let e = e.downcast_ref::<hyper::Error>()?;
    let text = e.to_string();
    if e.is_parse_too_large() {
        Some(if text.contains("URI too long") {
            414
        } else {
            431
        })
    } else if e.is_parse() && !text.contains("internal error") && !text.contains("HTTP2 preface") {
        Some(400)
    } else {
        None
    }
}

/// How long connections stay open for requests already on their way once draining starts.
const DRAIN_LINGER: Duration = Duration::from_secs(1);

fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // No timer for HTTP/1: without one hyper keeps no header-read timer per request; the
    // watchdog enforces --header-timeout per connection instead (see watchdog.rs).
    // half_close: a client that sends its request and then shuts down its write side (as
    // `curl` with some proxies, or a script closing stdin) still gets the answer. The price:
    // a client that goes away mid-order is noticed when the answer is written, not before,
    // so its order finishes first. Orders take milliseconds; a stall drill's orders are
    // released when the stall ends or is cleared.
    b.http1().max_buf_size(MAX_HEADER_BYTES).half_close(true);
    // An order or a scrape needs one stream at a time; a few dozen per connection serve any
    // real client, and bound what a flood of streams can make the server hold (their
    // answers, their send buffers).
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_H2_STREAMS)
        .max_send_buf_size(H2_SEND_BUFFER)
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    b
}

/// Concurrent HTTP/2 streams per connection.
pub const MAX_H2_STREAMS: u32 = 32;
/// Bytes of one stream's answer buffered ahead of the peer's flow-control window.
const H2_SEND_BUFFER: usize = 64 * 1024;

async fn upkeep_loop(app: Arc<App>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let app = Arc::clone(&app);
        let _ = tokio::task::spawn_blocking(move || app.telemetry().run_upkeep()).await;
    }
}

/// The listeners and what every accepted connection is served with.
struct Listening {
    public: Acceptor,
    admin: Option<Acceptor>,
    builder: auto::Builder<TokioExecutor>,
    graceful: GracefulShutdown,
    app: Arc<App>,
    header_timeout: Duration,
}

impl Listening {
    /// Accepts and serves connections on both listeners until `stop` completes.
    async fn serve_until(&mut self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let accepted = tokio::select! {
                biased;
                () = &mut stop => return,
                a = self.public.accept() => a,
                a = async { match self.admin.as_mut() {
                    Some(acc) => acc.accept().await,
                    None => std::future::pending().await,
                } } => a,
            };
            if let Some((stream, port)) = accepted {
                self.serve(stream, port);
            }
        }
    }

    fn serve(&self, stream: tokio::net::TcpStream, port: Port) {
        // Small JSON answers: do not let Nagle hold them back.
        let _ = stream.set_nodelay(true);
        let counts = Arc::clone(&self.app);
        let app = Arc::clone(&self.app);
        let activity = Arc::new(Activity::new(tokio::time::Instant::now()));
        let reports = Arc::clone(&activity);
        let svc = service_fn(move |req| Arc::clone(&app).handle(req, port, Arc::clone(&reports)));
        let conn = self
            .builder
            .serve_connection(TokioIo::new(stream), svc)
            .into_owned();
        let conn = self.graceful.watch(conn);
        let header_timeout = self.header_timeout;
        tokio::spawn(async move {
            if let Some(Err(e)) = watchdog::guard(conn, &activity, header_timeout).await {
                tracing::debug!(error = %e, "connection ended with an error");
                if let Some(status) = rejected_status(&*e) {
                    counts.telemetry().http_rejected(status);
                }
            }
        });
    }
}

/// One listener with its accept back-off.
struct Acceptor {
    listener: TcpListener,
    port: Port,
    backoff: Duration,
}

impl Acceptor {
    const MIN_BACKOFF: Duration = Duration::from_millis(5);
    const MAX_BACKOFF: Duration = Duration::from_secs(1);

    fn new(listener: TcpListener, port: Port) -> Self {
        Acceptor {
            listener,
            port,
            backoff: Self::MIN_BACKOFF,
        }
    }

    /// `None` after a failed accept (already logged and waited out).
    async fn accept(&mut self) -> Option<(tokio::net::TcpStream, Port)> {
        match self.listener.accept().await {
            Ok((s, _)) => {
                self.backoff = Self::MIN_BACKOFF;
                Some((s, self.port))
            }
            Err(e) => {
                // EMFILE and friends: the listener is fine, the process is out of something.
                tracing::warn!(error = %e, retry_in = ?self.backoff, "accept failed");
                tokio::time::sleep(self.backoff).await;
                self.backoff = (self.backoff * 2).min(Self::MAX_BACKOFF);
                None
            }
        }
    }
}
