//! The load generator's own Prometheus metrics (the client view beside the server's series):
//! names and HELP texts in one place, a private recorder with pre-registered handles, and a
//! small hyper service that serves `/metrics` on `--metrics-addr` until the run ends.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use metrics::{Counter, Gauge, Histogram, Key, Label, Recorder, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
use order_server::contract::{OrderType, LATENCY_BUCKETS};
use order_server::render::SharedRender;
use order_server::watchdog::{self, Activity};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::outcome::OutcomeClass;

pub const REQUESTS: &str = "loadgen_requests_total";
pub const SCHEDULED: &str = "loadgen_scheduled_requests_total";
pub const DURATION: &str = "loadgen_request_duration_seconds";
pub const LAG: &str = "loadgen_schedule_lag_seconds";
pub const TARGET_RATE: &str = "loadgen_target_rate";
pub const IN_FLIGHT: &str = "loadgen_requests_in_flight";
pub const LATE: &str = "loadgen_late_sends_total";
pub const SKIPPED: &str = "loadgen_skipped_sends_total";
pub const CONTROL_EVENTS: &str = "loadgen_control_events_total";

/// Sub-millisecond edges first: generator lag is measured in microseconds.
const LAG_BUCKETS: &[f64] = &[
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

static META: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// Pre-registered handles of the load generator's metrics.
pub struct LoadgenMetrics {
    recorder: Arc<PrometheusRecorder>,
    process: metrics_process::Collector,
    requests: [[Counter; 6]; 2],
    scheduled: [Counter; 2],
    corrected: [Histogram; 2],
    service: [Histogram; 2],
    lag: Histogram,
    target_rate: [Gauge; 2],
    in_flight: Gauge,
    late: [Counter; 2],
    skipped: [Counter; 2],
    control_events: [Counter; 6],
}

impl std::fmt::Debug for LoadgenMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadgenMetrics").finish_non_exhaustive()
    }
}

fn typed(name: &'static str, t: OrderType, extra: Option<(&'static str, &'static str)>) -> Key {
    let mut labels = vec![Label::new("order_type", t.as_str())];
    if let Some((k, v)) = extra {
        labels.push(Label::new(k, v));
    }
    Key::from_parts(name, labels)
}

impl LoadgenMetrics {
    pub fn new() -> Result<Self, metrics_exporter_prometheus::BuildError> {
        let r = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.into()), LATENCY_BUCKETS)?
            .set_buckets_for_metric(Matcher::Full(LAG.into()), LAG_BUCKETS)?
            .build_recorder();
        r.describe_counter(REQUESTS.into(), None,
            "Requests completed by the load generator, by order type and outcome class (2xx, 4xx, 5xx, timeout, connect_error, other).".into());
        r.describe_counter(
            SCHEDULED.into(),
            None,
            "Requests that fell due on the load generator's schedule, by order type (sent or not)."
                .into(),
        );
        r.describe_histogram(DURATION.into(), Some(Unit::Seconds),
            "Client-side latency by order type; kind=corrected is measured from the intended send time (no coordinated omission), kind=service from the actual send.".into());
        r.describe_histogram(
            LAG.into(),
            Some(Unit::Seconds),
            "How late the load generator sent requests compared with their schedule.".into(),
        );
        r.describe_gauge(
            TARGET_RATE.into(),
            None,
            "Requests per second this replica is scheduled to send right now, by order type."
                .into(),
        );
        r.describe_gauge(
            IN_FLIGHT.into(),
            None,
            "Requests sent and not yet answered.".into(),
        );
        r.describe_counter(LATE.into(), None,
            "Requests sent more than 10 ms after their intended time (in-flight cap or generator busy).".into());
        r.describe_counter(
            SKIPPED.into(),
            None,
            "Requests that fell due but were never sent because the run stopped first.".into(),
        );

        r.describe_counter(
            CONTROL_EVENTS.into(),
            None,
            "Changes made to the running load (rates, scenarios, faults, stop), by kind: what the dashboards annotate.".into(),
        );

        let counter = |k: Key| {
            let c = r.register_counter(&k, &META);
            c.absolute(0);
            c
        };
        let requests = OrderType::ALL.map(|t| {
            OutcomeClass::ALL.map(|o| counter(typed(REQUESTS, t, Some(("outcome", o.as_str())))))
        });
        let scheduled = OrderType::ALL.map(|t| counter(typed(SCHEDULED, t, None)));
        let late = OrderType::ALL.map(|t| counter(typed(LATE, t, None)));
        let skipped = OrderType::ALL.map(|t| counter(typed(SKIPPED, t, None)));
        let corrected = OrderType::ALL
            .map(|t| r.register_histogram(&typed(DURATION, t, Some(("kind", "corrected"))), &META));
        let service = OrderType::ALL
            .map(|t| r.register_histogram(&typed(DURATION, t, Some(("kind", "service"))), &META));
        let target_rate = OrderType::ALL.map(|t| {
            let g = r.register_gauge(&typed(TARGET_RATE, t, None), &META);
            g.set(0.0);
            g
        });
        let control_events = crate::live::EventKind::ALL.map(|k| {
            counter(Key::from_parts(
                CONTROL_EVENTS,
                vec![Label::new("kind", k.as_str())],
            ))
        });
        let lag = r.register_histogram(&Key::from_static_name(LAG), &META);
        let in_flight = r.register_gauge(&Key::from_static_name(IN_FLIGHT), &META);
        in_flight.set(0.0);
        let process = metrics_process::Collector::default();
        metrics::with_local_recorder(&r, || process.describe());
        Ok(LoadgenMetrics {
            recorder: Arc::new(r),
            process,
            requests,
            scheduled,
            corrected,
            service,
            lag,
            target_rate,
            in_flight,
            late,
            skipped,
            control_events,
        })
    }

    pub fn control_event(&self, kind: crate::live::EventKind) {
        self.control_events[kind.index()].increment(1);
    }

    pub fn scheduled(&self, t: OrderType, n: u64) {
        self.scheduled[t.index()].increment(n);
    }

    pub fn sent(&self, t: OrderType, lag: Duration, late: bool) {
        self.lag.record(lag.as_secs_f64());
        if late {
            self.late[t.index()].increment(1);
        }
    }

    pub fn completed(
        &self,
        t: OrderType,
        class: OutcomeClass,
        corrected: Duration,
        service: Duration,
    ) {
        self.requests[t.index()][class.index()].increment(1);
        if class.is_timed() {
            self.corrected[t.index()].record(corrected.as_secs_f64());
            self.service[t.index()].record(service.as_secs_f64());
        }
    }

    pub fn skipped(&self, t: OrderType, n: u64) {
        self.skipped[t.index()].increment(n);
    }

    pub fn set_target_rate(&self, t: OrderType, rate: f64) {
        self.target_rate[t.index()].set(rate);
    }

    pub fn set_in_flight(&self, n: u64) {
        self.in_flight.set(n as f64);
    }

    pub fn render(&self) -> String {
        metrics::with_local_recorder(&*self.recorder, || self.process.collect());
        self.recorder.handle().render()
    }

    pub fn run_upkeep(&self) {
        self.recorder.handle().run_upkeep();
    }
}

/// Connections the metrics endpoint serves at once; more wait in the kernel's backlog, so a
/// port scanner cannot take the file descriptors the load connections need.
pub const METRICS_MAX_CONNECTIONS: usize = 64;
/// How long a metrics connection may wait for a request head (as the order server's
/// `--header-timeout`): idle and slowloris connections are closed after it.
pub const METRICS_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `GET /metrics` (any other path: 404) over HTTP/1.1 until `shutdown` completes.
/// HTTP/1.1 only (Prometheus scrapes over it): no h2c streams to multiply renders, at most
/// [`METRICS_MAX_CONNECTIONS`] connections, each closed by the order server's watchdog after
/// [`METRICS_HEADER_TIMEOUT`] without a request, and one render shared by concurrent scrapes.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<LoadgenMetrics>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let upkeep = {
        let m = Arc::clone(&metrics);
        tokio::spawn(async move {
            // The exporter keeps every histogram sample until an upkeep folds them into
            // buckets, three a request: folding them four times a second keeps each upkeep
            // short enough not to hold the engine's core back, and the samples waiting few.
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let m = Arc::clone(&m);
                let _ = tokio::task::spawn_blocking(move || m.run_upkeep()).await;
            }
        })
    };
    let renders = Arc::new(SharedRender::new());
    let slots = Arc::new(Semaphore::new(METRICS_MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            r = accept(&listener, &slots) => r,
        };
        let Some((stream, slot)) = accepted else {
            continue;
        };
        let (m, renders) = (Arc::clone(&metrics), Arc::clone(&renders));
        let activity = Arc::new(Activity::new(tokio::time::Instant::now()));
        let reports = Arc::clone(&activity);
        let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let (m, renders) = (Arc::clone(&m), Arc::clone(&renders));
            let conn = Arc::clone(&reports);
            async move {
                // Busy while the answer is made: the watchdog never cuts a scrape short.
                let busy = conn.begin();
                let resp = metrics_response(req.uri().path(), m, &renders).await;
                drop(busy);
                Ok::<_, Infallible>(resp)
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .max_buf_size(16 * 1024)
            .serve_connection(TokioIo::new(stream), svc);
        tokio::spawn(async move {
            let _slot = slot;
            let _ = watchdog::guard(conn, &activity, METRICS_HEADER_TIMEOUT).await;
        });
    }
    upkeep.abort();
}

/// The next connection once a slot is free; `None` after a failed accept (logged, waited).
/// The control API's listener takes its connections the same way.
pub(crate) async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(tokio::net::TcpStream, OwnedSemaphorePermit)> {
    let slot = Arc::clone(slots).acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((s, _)) => Some((s, slot)),
        Err(e) => {
            tracing::warn!(error = %e, "listener: accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

async fn metrics_response(
    path: &str,
    m: Arc<LoadgenMetrics>,
    renders: &SharedRender,
) -> Response<Full<Bytes>> {
    let (status, ctype, body) = if path == "/metrics" {
        match renders.render(move || Some(m.render())).await {
            Ok((_, text)) => (200, order_server::contract::METRICS_CONTENT_TYPE, text),
            Err(e) => (
                500,
                "application/json",
                Bytes::from(format!("{{\"error\":\"{e}\"}}")),
            ),
        }
    } else {
        (
            404,
            "application/json",
            Bytes::from_static(b"{\"error\":\"only /metrics is served here\"}"),
        )
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(ctype),
    );
    resp
}
