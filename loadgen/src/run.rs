//! One load test from its validated configuration to its report: the embedded target when
//! there is none, the checks before the first request (the host resolves, TLS, the fault
//! API), the generator's own metrics endpoint, the dispatch core over both order types'
//! arrivals, carried out by the executor made ready before the clock starts (`executor`),
//! the scenario's faults, the requests never sent, the report, and the metrics linger.
//! [`run`] is the entry.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use order_server::contract::OrderType;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::client::{ClientError, OrderClient};
use crate::config::RunConfig;
use crate::dispatch::{Dispatch, Limits, StopReason};
use crate::embedded::Embedded;
use crate::endpoint::EndpointError;
use crate::executor::Executor;
use crate::faults::{AdminClient, AdminError};
use crate::live::Live;
use crate::progress::Progress;
use crate::recorder::Recorder;
use crate::report::{PhaseSpan, Report, ShardInfo};
use crate::schedule::Arrivals;
use crate::telemetry::{serve_metrics, LoadgenMetrics};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("cannot listen on {0} (--metrics-addr): {1}")]
    MetricsAddr(SocketAddr, #[source] std::io::Error),
    #[error("cannot listen on {0} (--control-addr): {1}")]
    ControlAddr(SocketAddr, #[source] std::io::Error),
    #[error("starting the embedded order server failed: {0}")]
    Embedded(#[source] std::io::Error),
    #[error("building the metrics recorder failed: {0}")]
    Metrics(#[from] metrics_exporter_prometheus::BuildError),
    #[error("scenario {0} switches server faults on: pass --admin-url (the server's --admin-listen address)")]
    NoAdmin(String),
    #[error("fault API check failed: {0}")]
    Admin(#[from] AdminError),
    #[error(transparent)]
    AdminUrl(AdminError),
    #[error("the paced engine failed: {0}")]
    Engine(#[source] std::io::Error),
    #[error("the paced engine's thread failed: {0}")]
    EngineThread(#[source] tokio::task::JoinError),
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
    // A steerable run (`--control-addr`) has a live state, whose stop counts as a signal.
    let steerable = cfg.control.is_some() || cfg.terminal.is_some();
    let live = cfg.live.clone().or_else(|| {
        if !steerable {
            return None;
        }
        let end = match (cfg.duration.map(|d| d.as_secs_f64()), cfg.plan.length()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Some(Arc::new(Live::new(cfg.plan.clone(), end)))
    });
    let stop = async {
        let live_stop = async {
            match &live {
                Some(l) => l.stopped().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stop => {}
            () = live_stop => {}
        }
        stopped.store(true, Ordering::Release);
    };
    tokio::pin!(stop);

    let embedded = match &cfg.target {
        Some(_) => None,
        None => Some(Embedded::start().await.map_err(RunError::Embedded)?),
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
    crate::endpoint::resolve(&target).await?;
    client.check_tls().await?;
    let admin = fault_api(&cfg, embedded.as_ref()).await?;

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

    // Every live change is counted, whichever front-end made it.
    if let (Some(l), Some(m)) = (&live, &metrics) {
        l.count_in(Arc::clone(m));
    }
    let control = match (&cfg.control, &live) {
        (Some(c), Some(l)) => {
            let admin = match cfg
                .admin_url
                .clone()
                .or_else(|| embedded.as_ref().map(|e| e.admin_url.clone()))
            {
                Some(url) => Some(
                    AdminClient::new(&url, cfg.admin_token.clone()).map_err(RunError::AdminUrl)?,
                ),
                None => None,
            };
            let ctl = crate::control::Control::new(Arc::clone(l), admin, c, cfg.seed);
            Some(
                crate::control::Serving::start(c, ctl)
                    .await
                    .map_err(|e| RunError::ControlAddr(c.addr, e))?,
            )
        }
        _ => None,
    };

    // The monitor's windows keep service time and lag for a steerable run too.
    let recorder = Arc::new(Recorder::new(metrics.clone(), cfg.series || live.is_some()));
    let mut dispatch = Dispatch::from_arrivals(
        OrderType::ALL.map(|t| Arrivals::new(cfg.plan.clone(), t, cfg.arrivals, cfg.seed)),
        Limits {
            duration: cfg.duration.map(|d| d.as_secs_f64()),
            requests: cfg.requests,
            tick: cfg.tick.as_secs_f64(),
        },
    );
    if let Some(l) = &live {
        dispatch = dispatch.steered_by(Arc::clone(l));
    }
    let executor = Executor::prepare(&cfg, &client).await?;
    let start = Instant::now();
    let started_at = std::time::SystemTime::now();
    if let Some(l) = &live {
        l.begin(start.into_std(), started_at);
    }
    // A steerable run shows its scenario's faults beside the live ones, and a rate change
    // that replaces the scenario's plan stops them.
    let fault_task = admin.map(|a| {
        let shown = live.clone();
        let task = tokio::spawn(crate::faults::drive(
            a,
            cfg.faults.clone(),
            start,
            move |f| {
                if let Some(l) = &shown {
                    l.fault_on(&f.request, crate::change::Source::Scenario);
                }
            },
        ));
        if let Some(l) = &live {
            l.hold_driver(crate::live::Driver::Run, task.abort_handle());
        }
        task
    });
    // No fault is switched on once the schedule has stopped, even during the drain.
    let faults_off = fault_task.as_ref().map(|t| t.abort_handle());
    // The schedule's stop also ends the live state: no change is taken during the drain.
    let closing = live.clone();
    let stop_faults = move || {
        if let Some(h) = faults_off {
            h.abort();
        }
        if let Some(l) = closing {
            l.close();
        }
    };
    let progress = Progress::start(&cfg, Arc::clone(&recorder), start, live.clone());
    let view = match (&cfg.terminal, &live) {
        (Some(logs), Some(l)) => Some(crate::tui::Tui::start(
            Arc::clone(l),
            crate::tui::TuiInfo {
                target: crate::redact::without_credentials(&target).into_owned(),
                thresholds: cfg.thresholds.clone(),
                max_rate: cfg.max_rate,
                logs: logs.clone(),
            },
        )),
        _ => None,
    };

    let (stopped_by, elapsed, dispatch) = executor
        .run(&cfg, dispatch, &recorder, start, stop.as_mut(), stop_faults)
        .await?;
    if let Some(l) = &live {
        l.close();
    }
    // The terminal is given back before the report is printed.
    if let Some(v) = view {
        v.stop();
    }
    if let Some(logs) = &cfg.terminal {
        logs.release();
    }
    recorder.unsent(&dispatch.finish(stopped_by, elapsed.as_secs_f64()));
    // The plan as the run went, live changes included.
    let plan = live.as_ref().map_or_else(|| cfg.plan.clone(), |l| l.plan());
    if let Some(t) = fault_task {
        t.abort();
    }
    // What the plan asked for over the time the schedule ran: up to the end for a run that
    // ran its length, up to the stop otherwise.
    let ran = match (stopped_by, cfg.duration) {
        (StopReason::Duration, Some(d)) => d.as_secs_f64(),
        _ => elapsed.as_secs_f64(),
    };
    // The tick stops first, so the series' last point and the report's totals come from
    // the same final numbers; the last point ends now, the drain included.
    let sampler = progress.stop().await;
    let (stats, last) = recorder.close();
    let now = start.elapsed().as_secs_f64();
    let series = sampler.map(|s| s.finish(now, ran, &last));
    let target_rates = OrderType::ALL.map(|t| match ran > 0.0 {
        true => plan.asked(t, ran) / ran,
        false => 0.0,
    });
    let mut report = Report::build(
        target,
        cfg.scenario.clone(),
        stopped_by,
        elapsed,
        &stats,
        target_rates,
        &cfg.thresholds,
    );
    report.shard = ShardInfo {
        index: cfg.plan.shard.0,
        count: cfg.plan.shard.1,
    };
    report.started_at = Some(humantime::format_rfc3339_millis(started_at).to_string());
    report.command_line = cfg.command_line.clone();
    report.run = Some(crate::run_id::RunIdentity::of(&cfg));
    report.phases = PhaseSpan::of(&plan);
    report.series = series;
    if let Some(l) = &live {
        report.events = l.events().0;
    }
    publish(&report);
    // The linger lets a last scrape see the end; a stop (SIGTERM from Kubernetes, Ctrl-C)
    // ends it at once. After a stop during the run there is nothing to wait for.
    if metrics_task.is_some() && !cfg.metrics_linger.is_zero() && !stopped.load(Ordering::Acquire) {
        tokio::select! {
            () = tokio::time::sleep(cfg.metrics_linger) => {}
            () = stop.as_mut() => {}
        }
    }
    if let Some(c) = control {
        c.stop().await;
    }
    let _ = metrics_stop.send(());
    if let Some(t) = metrics_task {
        let _ = t.await;
    }
    if let Some(e) = embedded {
        e.stop().await;
    }
    Ok(report)
}

/// The fault API client a scenario with faults needs, checked before the run.
async fn fault_api(
    cfg: &RunConfig,
    embedded: Option<&Embedded>,
) -> Result<Option<AdminClient>, RunError> {
    if cfg.faults.is_empty() {
        return Ok(None);
    }
    let url = cfg
        .admin_url
        .clone()
        .or_else(|| embedded.map(|e| e.admin_url.clone()))
        .ok_or_else(|| RunError::NoAdmin(cfg.scenario.clone().unwrap_or_default()))?;
    let admin = AdminClient::new(&url, cfg.admin_token.clone()).map_err(RunError::AdminUrl)?;
    admin.check().await?;
    Ok(Some(admin))
}
