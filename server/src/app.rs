//! Request handling: routing by path and method, the order handlers, health, `/metrics`, the
//! admin fault API, and the JSON bodies of every answer (errors included). Each request is
//! counted and timed here under its route template, so the `route` label stays a closed set.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderValue, ALLOW, AUTHORIZATION, CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::json;
use subtle::ConstantTimeEq;
// tokio's clock (std's outside paused-time tests): the same instants feed the order's fault
// stall, the connection watchdog and the durations.
use tokio::time::Instant;

use crate::body::Body;
use crate::config::Config;
use crate::contract::{method_label, OrderStatus, OrderType, Route};
use crate::daily::DailyCounter;
use crate::faults::{FaultRequest, FaultTable};
use crate::render::SharedRender;
use crate::sim::Simulator;
use crate::telemetry::Telemetry;
use crate::watchdog::Activity;

use crate::contract::{MAX_BODY_BYTES, METRICS_CONTENT_TYPE};

/// Shared state of one server instance.
#[derive(Debug)]
pub struct App {
    config: Config,
    telemetry: Telemetry,
    daily: DailyCounter,
    sim: Simulator,
    faults: FaultTable,
    /// One render at a time, shared by the scrapes that arrive while it runs.
    renders: SharedRender,
    ready: AtomicBool,
    in_flight: AtomicU64,
    orders_in_progress: AtomicU64,
    order_seq: AtomicU64,
    /// `--workers`: the queue's workers (tokio's semaphore serves its waiters in order).
    workers: Option<tokio::sync::Semaphore>,
}

/// Which listener a request arrived on; admin routes exist only on the admin one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Public,
    Admin,
}

impl App {
    pub fn new(config: Config) -> Result<Self, metrics_exporter_prometheus::BuildError> {
        let now = (config.clock)();
        Ok(App {
            telemetry: {
                let mut t = Telemetry::new()?;
                t.set_recording(config.metrics);
                t
            },
            daily: DailyCounter::new(config.timezone, now),
            sim: Simulator::new(config.sim.clone()),
            faults: FaultTable::default(),
            renders: SharedRender::new(),
            ready: AtomicBool::new(false),
            in_flight: AtomicU64::new(0),
            orders_in_progress: AtomicU64::new(0),
            order_seq: AtomicU64::new(0),
            workers: config
                .queue
                .map(|q| tokio::sync::Semaphore::new(q.workers as usize)),
            config,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Renders `/metrics`, refreshing the series that depend on time rather than on requests.
    pub fn render_metrics(&self) -> String {
        self.telemetry
            .set_orders_today(self.daily.snapshot((self.config.clock)()));
        self.telemetry
            .set_faults(self.faults.active_matrix(Instant::now()));
        self.telemetry.render()
    }

    /// Entry point for every request on either port.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        port: Port,
        conn: Arc<Activity>,
    ) -> Result<Response<Body>, Infallible> {
        let start = Instant::now();
        let busy = conn.begin();
        let _guard = InFlight::enter(&self);
        let mut route = Route::from_path(req.uri().path());
        if (route == Route::AdminFaults) != (port == Port::Admin) {
            route = Route::Other;
        }
        let method = method_label(req.method());
        let mut resp = self.route(route, req, start, &conn).await;
        if !self.is_ready() {
            // Draining: answer, then let hyper close the connection, so the client opens a
            // new one (refused) instead of losing a request on a connection we close.
            resp.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        let end = Instant::now();
        busy.end(end);
        self.telemetry
            .http_request(method, route, resp.status().as_u16(), end - start);
        Ok(resp)
    }

    async fn route(
        self: &Arc<Self>,
        route: Route,
        req: Request<Incoming>,
        start: Instant,
        conn: &Arc<Activity>,
    ) -> Response<Body> {
        let m = req.method().clone();
        match route {
            Route::FoodOrder | Route::ClothingOrder => {
                if m != Method::GET && m != Method::POST {
                    return method_not_allowed("GET, POST");
                }
                // Processing starts once the request is in: at arrival for a GET (one clock
                // read fewer per order), after the body for a POST.
                let mut start = start;
                if m == Method::POST {
                    if let Err(resp) = read_body(req.into_body(), self.config.body_timeout).await {
                        return resp;
                    }
                    start = Instant::now();
                }
                let t = route.order_type().unwrap_or(OrderType::Food);
                self.order(t, start).await
            }
            Route::Metrics if is_get(&m) => self.metrics(conn).await,
            Route::Healthz if is_get(&m) => json_response(StatusCode::OK, &json!({"status": "ok"})),
            Route::Readyz if is_get(&m) => {
                if self.is_ready() {
                    json_response(StatusCode::OK, &json!({"status": "ready"}))
                } else {
                    error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not ready: starting or draining",
                    )
                }
            }
            Route::Metrics | Route::Healthz | Route::Readyz => method_not_allowed("GET, HEAD"),
            Route::AdminFaults => self.admin(req).await,
            Route::Other => error(
                StatusCode::NOT_FOUND,
                &format!("no route for {}", req.uri().path()),
            ),
        }
    }

    async fn order(&self, t: OrderType, start: Instant) -> Response<Body> {
        self.telemetry.order_received(t);
        let Some(_slot) = OrderSlot::try_enter(self) else {
            // Shed at once: a bounded queue of work beats unbounded latency and memory.
            self.telemetry.order_processed(t, OrderStatus::Failed);
            let mut resp = error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!(
                    "overloaded: {} orders in progress; retry later",
                    self.config.max_in_flight
                ),
            );
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            return resp;
        };
        let seq = self.order_seq.fetch_add(1, Ordering::Relaxed);
        let mut fx = self.faults.effect(t, start);
        if fx.stall_until.is_some() {
            self.faults.wait_out_stall(t).await;
            // The faults may have changed while the order waited (a stall replaced by errors).
            fx = self.faults.effect(t, Instant::now());
        }
        let in_flight = self.in_flight.load(Ordering::Relaxed).saturating_sub(1);
        let mut outcome = self.sim.draw(t, seq, in_flight, &fx);
        // With a queue model the order waits for a worker and holds it for the service time
        // (plus any injected latency); the processing time counts the wait, as users see it.
        let worker = match &self.workers {
            Some(w) => w.acquire().await.ok(),
            None => None,
        };
        if let (Some(q), Some(_)) = (self.config.queue, &worker) {
            outcome.delay = q.service_time + fx.extra_latency;
        }
        if !outcome.delay.is_zero() {
            tokio::time::sleep(outcome.delay).await;
        }
        drop(worker);
        self.telemetry.processing_time(t, start.elapsed());
        if outcome.fail {
            self.telemetry.order_processed(t, OrderStatus::Failed);
            return json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({"success": false, "order_type": t, "order_id": seq,
                        "error": "order processing failed (simulated)"}),
            );
        }
        self.telemetry.order_processed(t, OrderStatus::Success);
        let today = self.daily.record(t, (self.config.clock)());
        self.telemetry.set_order_today(t, today);
        self.telemetry
            .order_amount(t, outcome.amount, outcome.items);
        order_accepted(seq, t, outcome.amount, outcome.items)
    }

    async fn metrics(self: &Arc<Self>, conn: &Arc<Activity>) -> Response<Body> {
        // Rendering walks every series, so it runs on the blocking pool; scrapes that arrive
        // meanwhile share it (render.rs).
        let app = Arc::clone(self);
        match self
            .renders
            .render(move || Some(app.render_metrics()))
            .await
        {
            Ok((_, text)) => Response::builder()
                .status(StatusCode::OK)
                .header(CONTENT_TYPE, METRICS_CONTENT_TYPE)
                .body(Body::unsent(text, conn.unsent()))
                .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "render failed")),
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("rendering metrics failed: {e}"),
            ),
        }
    }

    async fn admin(&self, req: Request<Incoming>) -> Response<Body> {
        if let Some(token) = &self.config.admin_token {
            let expected = format!("Bearer {token}");
            let given = req.headers().get(AUTHORIZATION).map(HeaderValue::as_bytes);
            // Constant time: how long the comparison takes says nothing about the token.
            let matches = given.is_some_and(|g| bool::from(g.ct_eq(expected.as_bytes())));
            if !matches {
                return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            }
        }
        let now = Instant::now();
        match *req.method() {
            Method::GET => json_response(StatusCode::OK, &json!({"faults": self.faults.list(now)})),
            Method::DELETE => {
                self.faults.clear();
                tracing::warn!("all injected faults cleared");
                json_response(StatusCode::OK, &json!({"faults": []}))
            }
            Method::POST => {
                let body = match read_body(req.into_body(), self.config.body_timeout).await {
                    Ok(b) => b,
                    Err(resp) => return resp,
                };
                let fault = FaultRequest::from_json(&body)
                    .map_err(|e| format!("invalid fault request: {e}"))
                    .and_then(|r| {
                        r.validate()
                            .map_err(|e| format!("invalid fault request: {e}"))
                    });
                match fault {
                    Ok(f) => {
                        self.faults.activate(&f, now);
                        tracing::warn!(kind = f.kind.as_str(), order_types = ?f.order_types,
                            duration = ?f.duration, "fault injected");
                        json_response(
                            StatusCode::CREATED,
                            &json!({"faults": self.faults.list(now)}),
                        )
                    }
                    Err(msg) => error(StatusCode::BAD_REQUEST, &msg),
                }
            }
            _ => method_not_allowed("GET, POST, DELETE"),
        }
    }
}

/// One of the `max_in_flight` order slots, held until the order is answered or dropped.
struct OrderSlot<'a>(&'a App);

impl<'a> OrderSlot<'a> {
    fn try_enter(app: &'a App) -> Option<Self> {
        let before = app.orders_in_progress.fetch_add(1, Ordering::AcqRel);
        if before >= u64::from(app.config.max_in_flight) {
            app.orders_in_progress.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(OrderSlot(app))
    }
}

impl Drop for OrderSlot<'_> {
    fn drop(&mut self) {
        self.0.orders_in_progress.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts a request as in flight until it is answered or its connection drops.
struct InFlight<'a>(&'a App);

impl<'a> InFlight<'a> {
    fn enter(app: &'a App) -> Self {
        let n = app.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        app.telemetry.set_in_flight(n);
        InFlight(app)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let n = self.0.in_flight.fetch_sub(1, Ordering::Relaxed) - 1;
        self.0.telemetry.set_in_flight(n);
    }
}

fn is_get(m: &Method) -> bool {
    m == Method::GET || m == Method::HEAD
}

async fn read_body(body: Incoming, timeout: std::time::Duration) -> Result<Bytes, Response<Body>> {
    let Ok(collected) =
        tokio::time::timeout(timeout, Limited::new(body, MAX_BODY_BYTES).collect()).await
    else {
        return Err(error(
            StatusCode::REQUEST_TIMEOUT,
            &format!("request body not received within {timeout:?}"),
        ));
    };
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body larger than {MAX_BODY_BYTES} bytes"),
        )),
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            &format!("could not read request body: {e}"),
        )),
    }
}

/// The answer to every successful order, written straight into one buffer: a
/// `serde_json::Value` would build a map of owned strings per order only to serialise and drop
/// it, a large share of a request's work (BENCHMARKS.md has the figures).
fn order_accepted(seq: u64, t: OrderType, amount: f64, items: u32) -> Response<Body> {
    // Amounts are whole cents (see sim.rs), so two integers print them exactly. itoa rather
    // than write!, whose formatting machinery costs more than the rest of this function.
    // BytesMut: freezing it hands the buffer to the body as is; `Bytes::from(String)` would
    // allocate again to shrink it.
    let cents = (amount * 100.0).round().max(0.0) as u64;
    let mut num = itoa::Buffer::new();
    let mut body = BytesMut::with_capacity(96);
    body.put_slice(br#"{"success":true,"order_id":"#);
    body.put_slice(num.format(seq).as_bytes());
    body.put_slice(br#","order_type":""#);
    body.put_slice(t.as_str().as_bytes());
    body.put_slice(br#"","amount":"#);
    body.put_slice(num.format(cents / 100).as_bytes());
    let frac = cents % 100;
    body.put_slice(if frac < 10 { b".0" } else { b"." });
    body.put_slice(num.format(frac).as_bytes());
    body.put_slice(br#","items":"#);
    body.put_slice(num.format(items).as_bytes());
    body.put_u8(b'}');
    let mut resp = Response::new(Body::new(body.freeze()));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Body::new(bytes));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub fn error(status: StatusCode, message: &str) -> Response<Body> {
    json_response(status, &json!({"success": false, "error": message}))
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut resp = error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("method not allowed; use {allow}"),
    );
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    resp
}
