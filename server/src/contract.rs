//! The metric contract: every metric name, HELP text, unit, bucket layout and closed label set
//! the server exports. Dashboards, alert rules and tests depend on these strings, so they live
//! here and nowhere else; handlers only ever refer to the constants.

use std::fmt;

/// The exposition's content type, text format 0.0.4: Prometheus 3 refuses a scrape with a
/// blank one. The load generator's `/metrics` answers with it too.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Largest request body accepted (orders carry none; fault requests are tiny).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Orders handled, by `order_type` and `status`. The guide's name, kept so its queries work.
pub const ORDERS_PROCESSED: &str = "order_service_processed_orders_total";
pub const ORDERS_PROCESSED_HELP: &str =
    "Orders handled by the order service, by order type and outcome (success or failed).";

/// Orders received, counted when processing starts, whether or not they ever finish.
/// Received minus processed is what is stuck or was abandoned: the "traffic offered" side
/// of the orders-stalled alert, which cannot rely on requests that never complete.
pub const ORDERS_RECEIVED: &str = "order_service_received_orders_total";
pub const ORDERS_RECEIVED_HELP: &str =
    "Orders received by the order service, by order type, counted when processing starts (whether or not it finishes).";

/// Orders accepted since local midnight. The guide's name; the guide set a random number here.
pub const ORDERS_TODAY: &str = "order_total_by_everyday";
pub const ORDERS_TODAY_HELP: &str =
    "Orders accepted since midnight in the configured time zone, by order type; resets to 0 at midnight.";

pub const ORDER_AMOUNT: &str = "order_service_order_amount";
pub const ORDER_AMOUNT_HELP: &str =
    "Value of successful orders in currency units (the guide's commented-out histogram buckets).";
/// The guide's commented-out `api_calls_number` buckets.
pub const ORDER_AMOUNT_BUCKETS: &[f64] = &[100.0, 200.0, 300.0, 500.0, 1000.0, 3000.0, 10000.0];

pub const PROCESSING_DURATION: &str = "order_service_processing_duration_seconds";
pub const PROCESSING_DURATION_HELP: &str =
    "Time spent processing an order inside the service, in seconds, by order type.";

/// Latency SLO threshold in seconds; it must stay an edge of [`LATENCY_BUCKETS`] so that
/// `le="0.25"` selects exactly the "fast enough" orders in alert rules.
pub const LATENCY_SLO_SECONDS: f64 = 0.25;

/// Shared by the processing and HTTP duration histograms so server-side panels line up.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub const ITEMS_PER_ORDER: &str = "order_service_items_per_order";
pub const ITEMS_PER_ORDER_HELP: &str =
    "Items in each successful order (a summary: rendered as quantiles over a rolling window; \
     quantiles cannot be aggregated across replicas).";

pub const HTTP_REQUESTS: &str = "http_server_requests_total";
pub const HTTP_REQUESTS_HELP: &str =
    "HTTP requests answered, by method, route template (other for unknown paths) and status code.";

pub const HTTP_DURATION: &str = "http_server_request_duration_seconds";
pub const HTTP_DURATION_HELP: &str =
    "HTTP request latency in seconds from request head received to response head sent, by method and route.";

pub const HTTP_IN_FLIGHT: &str = "http_server_requests_in_flight";
pub const HTTP_IN_FLIGHT_HELP: &str = "HTTP requests currently being served.";

pub const BUILD_INFO: &str = "order_service_build_info";
pub const BUILD_INFO_HELP: &str =
    "Always 1; labels carry the version and commit of the running build.";

pub const FAULT_ACTIVE: &str = "order_service_fault_active";
pub const FAULT_ACTIVE_HELP: &str =
    "1 while an injected fault of this kind is active for this order type (fault API), else 0.";

/// Label names, so rules and handlers spell them the same way.
pub const LABEL_ORDER_TYPE: &str = "order_type";
pub const LABEL_STATUS: &str = "status";
pub const LABEL_METHOD: &str = "method";
pub const LABEL_ROUTE: &str = "route";
pub const LABEL_KIND: &str = "kind";

/// The guide's two order types; a closed set so `order_type` cannot grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderType {
    Food,
    Clothing,
}

impl OrderType {
    pub const ALL: [OrderType; 2] = [OrderType::Food, OrderType::Clothing];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Food => "food",
            OrderType::Clothing => "clothing",
        }
    }

    /// Dense index for per-type arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for OrderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Outcome label of `order_service_processed_orders_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    Success,
    Failed,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 2] = [OrderStatus::Success, OrderStatus::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Success => "success",
            OrderStatus::Failed => "failed",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Route templates: the only values the `route` label can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    FoodOrder,
    ClothingOrder,
    Metrics,
    Healthz,
    Readyz,
    AdminFaults,
    Other,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::FoodOrder => "/makeFoodOrder",
            Route::ClothingOrder => "/makeClothingOrder",
            Route::Metrics => "/metrics",
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::AdminFaults => "/admin/faults",
            Route::Other => "other",
        }
    }

    pub fn from_path(path: &str) -> Route {
        match path {
            "/makeFoodOrder" => Route::FoodOrder,
            "/makeClothingOrder" => Route::ClothingOrder,
            "/metrics" => Route::Metrics,
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            "/admin/faults" => Route::AdminFaults,
            _ => Route::Other,
        }
    }

    pub fn order_type(self) -> Option<OrderType> {
        match self {
            Route::FoodOrder => Some(OrderType::Food),
            Route::ClothingOrder => Some(OrderType::Clothing),
            _ => None,
        }
    }
}

/// Maps any request method onto a closed set, so invented methods cannot create series.
pub fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::HEAD => "HEAD",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Kinds of injected fault, the `kind` label of [`FAULT_ACTIVE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    Errors,
    Latency,
    Stall,
}

impl FaultKind {
    pub const ALL: [FaultKind; 3] = [FaultKind::Errors, FaultKind::Latency, FaultKind::Stall];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Errors => "errors",
            FaultKind::Latency => "latency",
            FaultKind::Stall => "stall",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slo_threshold_is_a_bucket_edge() {
        assert!(LATENCY_BUCKETS.contains(&LATENCY_SLO_SECONDS));
    }

    #[test]
    fn buckets_are_strictly_increasing() {
        for b in [LATENCY_BUCKETS, ORDER_AMOUNT_BUCKETS] {
            assert!(b.windows(2).all(|w| w[0] < w[1]), "{b:?}");
        }
    }

    #[test]
    fn unknown_paths_and_methods_map_to_closed_sets() {
        assert_eq!(Route::from_path("/wp-admin.php"), Route::Other);
        assert_eq!(Route::from_path("/makefoodorder"), Route::Other);
        let odd = http::Method::from_bytes(b"BREW").expect("valid token");
        assert_eq!(method_label(&odd), "other");
    }
}
