//! The server's Prometheus recorder and the metric handles the handlers record into. Each
//! server instance owns its own recorder (not the process-global one), so several servers can
//! run in one process (tests, the load generator's embedded target) without mixing series, and
//! handles for the fixed label sets are registered once at start-up, which also makes every
//! series that dashboards rely on exist at 0 from the first scrape.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Recorder, Unit};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusRecorder};

use crate::contract::{self as c, FaultKind, OrderStatus, OrderType, Route};

/// Version and commit of this build, exported as `order_service_build_info`. The commit is
/// empty when the build was not given one (`ORDER_SERVER_COMMIT`, the image's build argument),
/// and the metric then leaves its `commit` label out rather than claim a value.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const COMMIT: &str = match option_env!("ORDER_SERVER_COMMIT") {
    Some(c) => c,
    None => "",
};

/// `order_service_build_info`'s labels: the version, and the commit when there is one.
pub fn build_labels(version: &'static str, commit: &'static str) -> Vec<Label> {
    let mut labels = vec![Label::new("version", version)];
    if !commit.trim().is_empty() {
        labels.push(Label::new("commit", commit));
    }
    labels
}

static META: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

type HttpKey = (&'static str, Route, u16);

/// Method labels (see `contract::method_label`), routes and the statuses the server answers:
/// the axes of the lock-free handle cache below. Anything else uses the map.
const METHODS: [&str; 8] = [
    "GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "other",
];
const ROUTES: usize = 7;
const STATUSES: [u16; 11] = [200, 201, 400, 401, 404, 405, 408, 413, 431, 500, 503];

fn method_index(m: &str) -> Option<usize> {
    METHODS.iter().position(|x| *x == m)
}

fn route_index(r: Route) -> usize {
    r as usize
}

fn status_index(s: u16) -> Option<usize> {
    STATUSES.iter().position(|x| *x == s)
}

pub struct Telemetry {
    recorder: Arc<PrometheusRecorder>,
    process: metrics_process::Collector,
    orders: [[Counter; 2]; 2],
    received: [Counter; 2],
    today: [Gauge; 2],
    amount: [Histogram; 2],
    processing: [Histogram; 2],
    items: [Histogram; 2],
    faults: [[Gauge; 3]; 2],
    in_flight: Gauge,
    /// `false` only for the benchmark baseline (`--metrics off`): every per-request record
    /// returns at once, so the difference measures what the instrumentation costs.
    recording: bool,
    http_requests: RwLock<HashMap<HttpKey, Counter>>,
    /// Handles by (method, route, status) index, filled on first use: the per-request path
    /// then costs an index and an atomic load instead of a hash, a lock and a clone of a
    /// handle from the maps (BENCHMARKS.md has the difference). A slot
    /// registers its series only when first used, so no series exists before its first
    /// request.
    http_counter_slots: Box<[OnceLock<Counter>]>,
    http_histogram_slots: Box<[OnceLock<Histogram>]>,
    http_duration: RwLock<HashMap<(&'static str, Route), Histogram>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Telemetry {
    pub fn new() -> Result<Self, BuildError> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(c::PROCESSING_DURATION.into()),
                c::LATENCY_BUCKETS,
            )?
            .set_buckets_for_metric(Matcher::Full(c::HTTP_DURATION.into()), c::LATENCY_BUCKETS)?
            .set_buckets_for_metric(
                Matcher::Full(c::ORDER_AMOUNT.into()),
                c::ORDER_AMOUNT_BUCKETS,
            )?
            // ITEMS_PER_ORDER deliberately has no buckets: it is the contract's one summary.
            .build_recorder();
        let r = &recorder;
        r.describe_counter(
            c::ORDERS_PROCESSED.into(),
            None,
            c::ORDERS_PROCESSED_HELP.into(),
        );
        r.describe_counter(
            c::ORDERS_RECEIVED.into(),
            None,
            c::ORDERS_RECEIVED_HELP.into(),
        );
        r.describe_gauge(c::ORDERS_TODAY.into(), None, c::ORDERS_TODAY_HELP.into());
        r.describe_histogram(c::ORDER_AMOUNT.into(), None, c::ORDER_AMOUNT_HELP.into());
        r.describe_histogram(
            c::PROCESSING_DURATION.into(),
            Some(Unit::Seconds),
            c::PROCESSING_DURATION_HELP.into(),
        );
        r.describe_histogram(
            c::ITEMS_PER_ORDER.into(),
            None,
            c::ITEMS_PER_ORDER_HELP.into(),
        );
        r.describe_counter(c::HTTP_REQUESTS.into(), None, c::HTTP_REQUESTS_HELP.into());
        r.describe_histogram(
            c::HTTP_DURATION.into(),
            Some(Unit::Seconds),
            c::HTTP_DURATION_HELP.into(),
        );
        r.describe_gauge(
            c::HTTP_IN_FLIGHT.into(),
            None,
            c::HTTP_IN_FLIGHT_HELP.into(),
        );
        r.describe_gauge(c::BUILD_INFO.into(), None, c::BUILD_INFO_HELP.into());
        r.describe_gauge(c::FAULT_ACTIVE.into(), None, c::FAULT_ACTIVE_HELP.into());

        let by_type = |name: &'static str| {
            OrderType::ALL.map(|t| key(name, vec![Label::new(c::LABEL_ORDER_TYPE, t.as_str())]))
        };
        let orders = OrderType::ALL.map(|t| {
            OrderStatus::ALL.map(|s| {
                let k = key(
                    c::ORDERS_PROCESSED,
                    vec![
                        Label::new(c::LABEL_ORDER_TYPE, t.as_str()),
                        Label::new(c::LABEL_STATUS, s.as_str()),
                    ],
                );
                let counter = r.register_counter(&k, &META);
                counter.absolute(0);
                counter
            })
        });
        let received = by_type(c::ORDERS_RECEIVED).map(|k| {
            let counter = r.register_counter(&k, &META);
            counter.absolute(0);
            counter
        });
        let today = by_type(c::ORDERS_TODAY).map(|k| {
            let g = r.register_gauge(&k, &META);
            g.set(0.0);
            g
        });
        let amount = by_type(c::ORDER_AMOUNT).map(|k| r.register_histogram(&k, &META));
        let processing = by_type(c::PROCESSING_DURATION).map(|k| r.register_histogram(&k, &META));
        let items = by_type(c::ITEMS_PER_ORDER).map(|k| r.register_histogram(&k, &META));
        let faults = OrderType::ALL.map(|t| {
            FaultKind::ALL.map(|kind| {
                let k = key(
                    c::FAULT_ACTIVE,
                    vec![
                        Label::new(c::LABEL_ORDER_TYPE, t.as_str()),
                        Label::new(c::LABEL_KIND, kind.as_str()),
                    ],
                );
                let g = r.register_gauge(&k, &META);
                g.set(0.0);
                g
            })
        });
        let in_flight = r.register_gauge(&Key::from_static_name(c::HTTP_IN_FLIGHT), &META);
        in_flight.set(0.0);
        r.register_gauge(&key(c::BUILD_INFO, build_labels(VERSION, COMMIT)), &META)
            .set(1.0);

        let process = metrics_process::Collector::default();
        metrics::with_local_recorder(r, || process.describe());

        let t = Telemetry {
            recorder: Arc::new(recorder),
            process,
            orders,
            received,
            today,
            amount,
            processing,
            items,
            faults,
            in_flight,
            recording: true,
            http_requests: RwLock::default(),
            http_duration: RwLock::default(),
            http_counter_slots: (0..METHODS.len() * ROUTES * STATUSES.len())
                .map(|_| OnceLock::new())
                .collect(),
            http_histogram_slots: (0..METHODS.len() * ROUTES)
                .map(|_| OnceLock::new())
                .collect(),
        };
        // The series an error-ratio panel divides by must exist before the first error.
        for route in [Route::FoodOrder, Route::ClothingOrder] {
            for method in ["GET", "POST"] {
                for status in [200, 500] {
                    let _ = t.http_counter(method, route, status);
                }
                let _ = t.http_histogram(method, route);
            }
        }
        Ok(t)
    }

    pub fn order_received(&self, t: OrderType) {
        if !self.recording {
            return;
        }
        self.received[t.index()].increment(1);
    }

    pub fn order_processed(&self, t: OrderType, s: OrderStatus) {
        if !self.recording {
            return;
        }
        self.orders[t.index()][s.index()].increment(1);
    }

    pub fn set_orders_today(&self, counts: [u64; 2]) {
        for t in OrderType::ALL {
            self.today[t.index()].set(counts[t.index()] as f64);
        }
    }

    pub fn set_order_today(&self, t: OrderType, count: u64) {
        if !self.recording {
            return;
        }
        self.today[t.index()].set(count as f64);
    }

    pub fn order_amount(&self, t: OrderType, amount: f64, items: u32) {
        if !self.recording {
            return;
        }
        self.amount[t.index()].record(amount);
        self.items[t.index()].record(f64::from(items));
    }

    pub fn processing_time(&self, t: OrderType, d: Duration) {
        if !self.recording {
            return;
        }
        self.processing[t.index()].record(d.as_secs_f64());
    }

    pub fn set_faults(&self, active: [[bool; 3]; 2]) {
        for t in OrderType::ALL {
            for k in FaultKind::ALL {
                let v = if active[t.index()][k.index()] {
                    1.0
                } else {
                    0.0
                };
                self.faults[t.index()][k.index()].set(v);
            }
        }
    }

    pub fn set_in_flight(&self, n: u64) {
        if self.recording {
            self.in_flight.set(n as f64);
        }
    }

    /// Switches per-request recording off (the benchmark baseline) or back on.
    pub fn set_recording(&mut self, on: bool) {
        self.recording = on;
    }

    pub fn http_request(&self, method: &'static str, route: Route, status: u16, d: Duration) {
        if !self.recording {
            return;
        }
        let secs = d.as_secs_f64();
        // Slot indices; `None` (a status outside STATUSES) falls back to the maps.
        let mr = method_index(method).map(|m| m * ROUTES + route_index(route));
        let ms = mr
            .zip(status_index(status))
            .map(|(mr, s)| mr * STATUSES.len() + s);
        match ms {
            Some(i) => self.http_counter_slots[i]
                .get_or_init(|| self.http_counter(method, route, status))
                .increment(1),
            None => self.http_counter(method, route, status).increment(1),
        }
        match mr {
            Some(i) => self.http_histogram_slots[i]
                .get_or_init(|| self.http_histogram(method, route))
                .record(secs),
            None => self.http_histogram(method, route).record(secs),
        }
    }

    /// A request hyper refused before it reached a handler (400 for a malformed head, 431 for
    /// one over the size limit): counted under method and route `other`. It has no duration,
    /// so the latency histogram does not see it.
    pub fn http_rejected(&self, status: u16) {
        if self.recording {
            self.http_counter("other", Route::Other, status)
                .increment(1);
        }
    }

    fn http_counter(&self, method: &'static str, route: Route, status: u16) -> Counter {
        let k = (method, route, status);
        if let Some(h) = read(&self.http_requests).get(&k) {
            return h.clone();
        }
        let mut map = self
            .http_requests
            .write()
            .unwrap_or_else(|e| e.into_inner());
        map.entry(k)
            .or_insert_with(|| {
                let c = self.recorder.register_counter(
                    &key(
                        c::HTTP_REQUESTS,
                        vec![
                            Label::new(c::LABEL_METHOD, method),
                            Label::new(c::LABEL_ROUTE, route.as_str()),
                            Label::new(c::LABEL_STATUS, status.to_string()),
                        ],
                    ),
                    &META,
                );
                c.absolute(0);
                c
            })
            .clone()
    }

    fn http_histogram(&self, method: &'static str, route: Route) -> Histogram {
        let k = (method, route);
        if let Some(h) = read(&self.http_duration).get(&k) {
            return h.clone();
        }
        let mut map = self
            .http_duration
            .write()
            .unwrap_or_else(|e| e.into_inner());
        map.entry(k)
            .or_insert_with(|| {
                self.recorder.register_histogram(
                    &key(
                        c::HTTP_DURATION,
                        vec![
                            Label::new(c::LABEL_METHOD, method),
                            Label::new(c::LABEL_ROUTE, route.as_str()),
                        ],
                    ),
                    &META,
                )
            })
            .clone()
    }

    /// Renders the exposition text. Blocking (it walks every series): call it off the async
    /// workers.
    pub fn render(&self) -> String {
        metrics::with_local_recorder(&*self.recorder, || self.process.collect());
        self.recorder.handle().render()
    }

    /// Drains buffered histogram samples; without it they pile up between scrapes.
    pub fn run_upkeep(&self) {
        self.recorder.handle().run_upkeep();
    }
}

fn key(name: &'static str, labels: Vec<Label>) -> Key {
    Key::from_parts(name, labels)
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_cache_covers_every_route_and_method_label() {
        let routes = [
            Route::FoodOrder,
            Route::ClothingOrder,
            Route::Metrics,
            Route::Healthz,
            Route::Readyz,
            Route::AdminFaults,
            Route::Other,
        ];
        assert_eq!(routes.len(), ROUTES);
        let mut seen = std::collections::BTreeSet::new();
        for r in routes {
            assert!(route_index(r) < ROUTES);
            assert!(seen.insert(route_index(r)), "{r:?}");
        }
        for m in [
            "GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW",
        ] {
            let label = c::method_label(&http::Method::from_bytes(m.as_bytes()).expect("method"));
            assert!(method_index(label).is_some(), "{label}");
        }
    }

    #[test]
    fn cached_and_uncached_statuses_land_in_the_same_series() {
        let t = Telemetry::new().expect("telemetry");
        for status in [200, 200, 418] {
            t.http_request("GET", Route::FoodOrder, status, Duration::from_millis(1));
        }
        let m = crate::exposition::Exposition::parse(&t.render()).expect("parse");
        let count = |s: &str| {
            m.value(
                c::HTTP_REQUESTS,
                &[
                    ("method", "GET"),
                    ("route", "/makeFoodOrder"),
                    ("status", s),
                ],
            )
        };
        assert_eq!(count("200"), Some(2.0));
        assert_eq!(count("418"), Some(1.0));
        let n = m.value(
            &format!("{}_count", c::HTTP_DURATION),
            &[("method", "GET"), ("route", "/makeFoodOrder")],
        );
        assert_eq!(n, Some(3.0));
    }
}
