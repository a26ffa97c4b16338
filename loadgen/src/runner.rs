//! Runs a load test: starts the embedded target if there is none, serves the generator's own
//! metrics, switches scenario faults on at their phase, and drives the open-model dispatch
//! loop (the paced engine for plain http on Linux, an async loop on tokio otherwise): each
//! request leaves at its due time whether or not earlier ones have answered; the
//! in-flight cap delays (and counts) instead of dropping; stop by duration, request count, end
//! of scenario or the `stop` future; then a bounded drain and the report.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use order_server::contract::OrderType;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tokio::time::Instant;

use crate::cli::RunConfig;
use crate::client::{AdminClient, ClientError, OrderClient};
use crate::pacer::Pacer;
use crate::progress::Progress;
use crate::recorder::Recorder;
use crate::report::Report;
use crate::schedule::{before_end, tick_after, Arrivals};
use crate::telemetry::{serve_metrics, LoadgenMetrics};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot listen on {0} (--metrics-addr): {1}")]
    MetricsAddr(SocketAddr, std::io::Error),
    #[error("starting the embedded order server failed: {0}")]
    Embedded(String),
    #[error("building the metrics recorder failed: {0}")]
    Metrics(#[from] metrics_exporter_prometheus::BuildError),
    #[error("scenario {0} switches server faults on: pass --admin-url (the server's --admin-listen address)")]
    NoAdmin(String),
    #[error("fault API check failed: {0}")]
    Admin(String),
    #[error("the paced engine failed: {0}")]
    Engine(String),
}

/// An order server started in-process on loopback, for runs without `--target`.
struct Embedded {
    url: String,
    admin_url: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn start_embedded() -> Result<Embedded, RunError> {
    let bind = || async {
        TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| RunError::Embedded(e.to_string()))
    };
    let (listener, admin) = (bind().await?, bind().await?);
    let addr = listener
        .local_addr()
        .map_err(|e| RunError::Embedded(e.to_string()))?;
    let admin_addr = admin
        .local_addr()
        .map_err(|e| RunError::Embedded(e.to_string()))?;
    let (stop, stopped) = oneshot::channel::<()>();
    let config = order_server::Config::default();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = order_server::serve(listener, Some(admin), config, shutdown).await {
            tracing::error!(error = %e, "embedded order server failed");
        }
    });
    Ok(Embedded {
        url: format!("http://{addr}/"),
        admin_url: format!("http://{admin_addr}/"),
        stop,
        task,
    })
}

/// Runs the load test described by `cfg` until it ends or `stop` completes.
pub async fn run(cfg: RunConfig, stop: impl Future<Output = ()>) -> Result<Report, RunError> {
    run_publishing(cfg, stop, |_| {}).await
}

/// Like [`run`], handing the report to `publish` as soon as it is built: before
/// `--metrics-linger`, so a run stopped during the linger has already written its report.
/// A `stop` during the linger ends it at once.
pub async fn run_publishing(
    cfg: RunConfig,
    stop: impl Future<Output = ()>,
    publish: impl FnOnce(&Report),
) -> Result<Report, RunError> {
    // `stop` may complete anywhere in the run (during the engine's drain, say) whatever the
    // run then reports as its reason; the flag says so, and a finished future is never polled
    // again.
    let stopped = AtomicBool::new(false);
    let stop = async {
        stop.await;
        stopped.store(true, Ordering::Release);
    };
    tokio::pin!(stop);
    let embedded = match &cfg.target {
        Some(_) => None,
        None => Some(start_embedded().await?),
    };
    let target = match (&cfg.target, &embedded) {
        (Some(t), _) => t.clone(),
        (None, Some(e)) => {
            tracing::info!(
                "no --target: driving an embedded order server at {} (its metrics: {}metrics, fault API: {})",
                e.url, e.url, e.admin_url
            );
            e.url.clone()
        }
        (None, None) => unreachable!("embedded server started above"),
    };
    let client = OrderClient::new(&target, &cfg.client)?;
    crate::client::resolve(&target).await?;
    client.check_tls().await?;

    let admin_url = cfg
        .admin_url
        .clone()
        .or_else(|| embedded.as_ref().map(|e| e.admin_url.clone()));
    let admin = match (&admin_url, cfg.faults.is_empty()) {
        (_, true) => None,
        (None, false) => return Err(RunError::NoAdmin(cfg.scenario.clone().unwrap_or_default())),
        (Some(url), false) => {
            let a = AdminClient::new(url, cfg.admin_token.clone())?;
            a.check().await.map_err(RunError::Admin)?;
            Some(a)
        }
    };

    let metrics = match cfg.metrics_addr {
        Some(_) => Some(Arc::new(LoadgenMetrics::new()?)),
        None => None,
    };
    let (metrics_stop, metrics_stopped) = oneshot::channel::<()>();
    let metrics_task = match (cfg.metrics_addr, &metrics) {
        (Some(addr), Some(m)) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| RunError::MetricsAddr(addr, e))?;
            tracing::info!(
                "load generator metrics on http://{}/metrics",
                listener.local_addr().unwrap_or(addr)
            );
            Some(tokio::spawn(serve_metrics(
                listener,
                Arc::clone(m),
                async {
                    let _ = metrics_stopped.await;
                },
            )))
        }
        _ => None,
    };

    let recorder = Arc::new(Recorder::new(metrics.clone()));
    let start = Instant::now();
    let fault_task = admin.map(|a| tokio::spawn(inject_faults(a, cfg.faults.clone(), start)));
    let progress = Progress::start(&cfg, Arc::clone(&recorder), start);

    // The engine drains its own connections before it returns: what it left in flight can
    // no longer complete, so waiting for it again would only double the drain.
    #[cfg(target_os = "linux")]
    let (stopped_by, elapsed, drain_left) = match client.plain_urls() {
        Some(urls) => {
            let target = crate::engine::Target::new(urls, &cfg.client, cfg.max_in_flight)?;
            let (by, took) = dispatch_engine(&cfg, target, &recorder, start, stop.as_mut()).await?;
            (by, took, Duration::ZERO)
        }
        None => {
            let (by, took) = dispatch(&cfg, &client, &recorder, start, stop.as_mut()).await;
            (by, took, cfg.drain)
        }
    };
    #[cfg(not(target_os = "linux"))]
    let (stopped_by, elapsed, drain_left) = {
        let (by, took) = dispatch(&cfg, &client, &recorder, start, stop.as_mut()).await;
        (by, took, cfg.drain)
    };

    if let Some(t) = fault_task {
        t.abort();
    }
    drain(&recorder, drain_left).await;
    progress.finish();

    let report = Report::build(
        target,
        cfg.scenario.clone(),
        stopped_by,
        elapsed,
        &recorder.snapshot(),
        &cfg.thresholds,
    );

    publish(&report);
    // The linger lets a last scrape see the end; a stop (SIGTERM from Kubernetes, Ctrl-C)
    // ends it at once. After a stop during the run there is nothing to wait for.
    if metrics_task.is_some() && !cfg.metrics_linger.is_zero() && !stopped.load(Ordering::Acquire) {
        tokio::select! {
            () = tokio::time::sleep(cfg.metrics_linger) => {}
            () = stop.as_mut() => {}
        }
    }
    let _ = metrics_stop.send(());
    if let Some(t) = metrics_task {
        let _ = t.await;
    }
    if let Some(e) = embedded {
        let _ = e.stop.send(());
        let _ = e.task.await;
    }
    Ok(report)
}

/// Both order types' due times, merged: the earliest comes first.
struct Schedule {
    arrivals: [Arrivals; 2],
    next: [Option<f64>; 2],
}

impl Schedule {
    fn new(cfg: &RunConfig) -> Self {
        let horizon = cfg.duration.map(|d| d.as_secs_f64());
        let mut arrivals = OrderType::ALL
            .map(|t| Arrivals::new(cfg.plan.clone(), t, cfg.arrivals, cfg.seed).until(horizon));
        let next = [arrivals[0].next_due(), arrivals[1].next_due()];
        Schedule { arrivals, next }
    }

    /// The earliest due request: its type's index and due time in seconds from the start.
    fn peek(&self) -> Option<(usize, f64)> {
        match (self.next[0], self.next[1]) {
            (Some(a), Some(b)) => Some(if a <= b { (0, a) } else { (1, b) }),
            (Some(a), None) => Some((0, a)),
            (None, Some(b)) => Some((1, b)),
            (None, None) => None,
        }
    }

    fn advance(&mut self, i: usize) {
        self.next[i] = self.arrivals[i].next_due();
    }

    /// Takes the earliest due request off the schedule.
    #[cfg(target_os = "linux")]
    fn pop(&mut self) -> Option<(OrderType, f64)> {
        let (i, due) = self.peek()?;
        self.advance(i);
        Some((OrderType::ALL[i], due))
    }

    /// After a run stopped early or at its end: requests already due but never sent are
    /// reported as scheduled and skipped, not silently dropped.
    fn count_unsent(
        &mut self,
        cfg: &RunConfig,
        recorder: &Recorder,
        stopped_by: &str,
        elapsed: Duration,
    ) {
        if stopped_by != "interrupted" && stopped_by != "duration" {
            return;
        }
        let now = match cfg.duration {
            Some(end) if stopped_by == "duration" => end.as_secs_f64(),
            _ => elapsed.as_secs_f64(),
        };
        for i in 0..2 {
            let mut n = 0u64;
            while let Some(d) = self.next[i] {
                if !before_end(d, now) || n >= 10_000_000 {
                    break;
                }
                n += 1;
                self.advance(i);
            }
            recorder.scheduled_n(OrderType::ALL[i], n);
            recorder.skipped(OrderType::ALL[i], n);
        }
    }
}

/// The paced engine on a thread of its own (see `engine`), with `stop` passed on as a flag.
#[cfg(target_os = "linux")]
async fn dispatch_engine(
    cfg: &RunConfig,
    target: crate::engine::Target,
    recorder: &Arc<Recorder>,
    start: Instant,
    stop: impl Future<Output = ()>,
) -> Result<(&'static str, Duration), RunError> {
    let flag = Arc::new(AtomicBool::new(false));
    let limits = crate::engine::Limits {
        duration: cfg.duration,
        requests: cfg.requests,
        drain: cfg.drain,
    };
    let mut schedule = Schedule::new(cfg);
    let tick = cfg.tick;
    let (rec, f) = (Arc::clone(recorder), Arc::clone(&flag));
    let job = tokio::task::spawn_blocking(move || {
        let out = crate::engine::run(
            &target,
            || schedule.pop(),
            limits,
            tick,
            &rec,
            start.into_std(),
            &f,
        );
        (out, schedule)
    });
    tokio::pin!(stop, job);
    let joined = tokio::select! {
        r = &mut job => r,
        () = &mut stop => {
            flag.store(true, Ordering::Relaxed);
            job.await
        }
    };
    let (out, mut schedule) = joined.map_err(|e| RunError::Engine(e.to_string()))?;
    let (stopped_by, elapsed) = out.map_err(|e| RunError::Engine(e.to_string()))?;
    schedule.count_unsent(cfg, recorder, stopped_by, elapsed);
    Ok((stopped_by, elapsed))
}

/// The open-model loop. Returns why it stopped and how long scheduling ran.
async fn dispatch(
    cfg: &RunConfig,
    client: &OrderClient,
    recorder: &Arc<Recorder>,
    start: Instant,
    stop: impl Future<Output = ()>,
) -> (&'static str, Duration) {
    let mut schedule = Schedule::new(cfg);
    let permits = Arc::new(Semaphore::new(cfg.max_in_flight));
    let mut scheduled: u64 = 0;
    let mut pacer = Pacer::new();
    // One timer for the end of the run, made once: a new one per wait for a permit cost a
    // timer registration per request at saturation.
    let end = sleep_until_end(start, cfg.duration);
    tokio::pin!(stop, end);

    let stopped_by = loop {
        let pick = schedule.peek();
        // With a fixed length, a run whose next request falls after the end (or that has
        // nothing more due) waits the rest out, so "duration" always means the full duration.
        if let Some(length) = cfg.duration {
            if pick.is_none_or(|(_, due)| !before_end(due, length.as_secs_f64())) {
                tokio::select! {
                    biased;
                    () = &mut stop => break "interrupted",
                    () = &mut end => break "duration",
                }
            }
        }
        let Some((i, due)) = pick else {
            break "scenario_end";
        };
        if cfg.requests.is_some_and(|n| scheduled >= n) {
            break "requests";
        }
        let t = OrderType::ALL[i];
        let at = start + Duration::from_secs_f64(due);
        // The schedule can fall behind the clock (a target slower than the rate, the
        // in-flight cap full): the run still ends on time, and what was due but never sent
        // is counted as skipped below.
        // With ticks, the last tick boundary can be the end itself: what fell due before the
        // end still goes out then, as it would have at any other boundary.
        if cfg.tick.is_zero()
            && cfg
                .duration
                .is_some_and(|length| Instant::now() >= start + length)
        {
            break "duration";
        }
        if at > Instant::now() {
            let end = cfg.duration.map(|d| d.as_secs_f64());
            let look = tick_after(due, cfg.tick.as_secs_f64(), end);
            tokio::select! {
                biased;
                () = &mut stop => break "interrupted",
                () = pacer.until(start + Duration::from_secs_f64(look)) => {}
            }
        }
        recorder.scheduled(t);
        scheduled += 1;
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::select! {
                biased;
                () = &mut stop => {
                    recorder.skipped(t, 1);
                    schedule.advance(i);
                    break "interrupted";
                }
                () = &mut end => {
                    recorder.skipped(t, 1);
                    schedule.advance(i);
                    break "duration";
                }
                p = Arc::clone(&permits).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break "interrupted",
                },
            },
        };
        let sent = Instant::now();
        recorder.sent(t, sent.saturating_duration_since(at));
        let client = client.clone();
        let rec = Arc::clone(recorder);
        tokio::spawn(async move {
            let class = client.send(t).await;
            let done = Instant::now();
            rec.completed(t, class, done - at, done - sent);
            drop(permit);
        });
        schedule.advance(i);
    };

    let elapsed = start.elapsed();
    schedule.count_unsent(cfg, recorder, stopped_by, elapsed);
    (stopped_by, elapsed)
}

/// Completes at the end of a run with a fixed length; never otherwise.
async fn sleep_until_end(start: Instant, duration: Option<Duration>) {
    match duration {
        Some(end) => tokio::time::sleep_until(start + end).await,
        None => std::future::pending().await,
    }
}

/// Waits for requests in flight, at most `limit`.
async fn drain(recorder: &Recorder, limit: Duration) {
    let deadline = Instant::now() + limit;
    while recorder.in_flight() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let left = recorder.in_flight();
    if left > 0 {
        tracing::warn!(
            in_flight = left,
            "drain time ran out; these requests are reported as sent but not completed"
        );
    }
}

async fn inject_faults(
    admin: AdminClient,
    faults: Vec<crate::scenario::TimedFault>,
    start: Instant,
) {
    for f in faults {
        tokio::time::sleep_until(start + Duration::from_secs_f64(f.at)).await;
        match admin.inject(&f.body).await {
            Ok(()) => tracing::info!(phase = %f.phase, fault = %f.body, "fault switched on"),
            Err(e) => {
                tracing::error!(phase = %f.phase, error = %e, "could not switch the fault on")
            }
        }
    }
}
