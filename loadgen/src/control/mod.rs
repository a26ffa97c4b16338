//! The live control API and its page (`--control-addr`): a front-end of the run's live state
//! ([`crate::live`]) that sends changes and reads snapshots, and never touches the schedule,
//! the recorder or the executors. HTTP/1.1 only, at most [`MAX_CONNECTIONS`] connections,
//! each closed by the order server's watchdog after [`HEADER_TIMEOUT`] without a request
//! head, bodies of at most [`MAX_BODY_BYTES`], and every request through [`guard`] first.
//! The routes and their answers are in `api`, `state` and `scenario`, the page in
//! `page.html`.

mod api;
pub mod config;
pub mod guard;
mod scenario;
mod state;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::Request;
use hyper_util::rt::TokioIo;
use order_server::watchdog::{self, Activity};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use config::{ControlArgs, ControlConfig, ControlError};

use crate::faults::AdminClient;
use crate::live::Live;

/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a connection may wait for a request head, idle keep-alive included.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request body taken.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// The largest request head taken.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// What the control API works with.
#[derive(Debug)]
pub struct Control {
    live: Arc<Live>,
    admin: Option<AdminClient>,
    token: Option<String>,
    max_rate: f64,
    seed: u64,
    /// Held by each change from its checks to its application, so two concurrent calls
    /// cannot both pass a check (one scenario at a time, --max-rate) that only one may.
    changing: tokio::sync::Mutex<()>,
}

impl Control {
    pub fn new(
        live: Arc<Live>,
        admin: Option<AdminClient>,
        config: &ControlConfig,
        seed: u64,
    ) -> Self {
        Control {
            live,
            admin,
            token: config.token.clone(),
            max_rate: config.max_rate,
            seed,
            changing: tokio::sync::Mutex::new(()),
        }
    }
}

/// Serves the control API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    control: Arc<Control>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            r = crate::telemetry::accept(&listener, &slots) => r,
        };
        let Some((stream, slot)) = accepted else {
            continue;
        };
        let control = Arc::clone(&control);
        let activity = Arc::new(Activity::new(tokio::time::Instant::now()));
        let reports = Arc::clone(&activity);
        let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let control = Arc::clone(&control);
            let conn = Arc::clone(&reports);
            async move {
                let busy = conn.begin();
                let resp = api::answer(&control, req).await;
                drop(busy);
                Ok::<_, Infallible>(resp)
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .max_buf_size(MAX_HEAD_BYTES)
            .serve_connection(TokioIo::new(stream), svc);
        tokio::spawn(async move {
            let _slot = slot;
            let _ = watchdog::guard(conn, &activity, HEADER_TIMEOUT).await;
        });
    }
}

/// The control API serving in the background; [`Serving::stop`] ends it.
#[derive(Debug)]
pub struct Serving {
    task: tokio::task::JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
    pub addr: std::net::SocketAddr,
}

impl Serving {
    /// Binds `config.addr` and serves `control` there.
    pub async fn start(config: &ControlConfig, control: Control) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.addr).await?;
        let addr = listener.local_addr()?;
        tracing::info!(
            "live control page on http://{addr}/ (API under /api/v1/{})",
            if config.token.is_some() {
                "; changes need the --control-token"
            } else {
                ""
            }
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, Arc::new(control), async {
            let _ = stopped.await;
        }));
        Ok(Serving { task, stop, addr })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
