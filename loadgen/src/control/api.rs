//! The control API's routes: the page, the live state, rates, faults (passed on to the
//! server's fault API with its own request type), bundled scenarios and the stop. Each change
//! goes to the live state as a value and the answer waits until the dispatch core applied it,
//! so the state it returns already shows it. Every answer is JSON but the page, and every
//! refusal says why.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use order_server::contract::OrderType;
use order_server::FaultRequest;
use serde_json::{json, Value};

use super::scenario::{start_scenario, stop_scenario};
use super::state::state;
use super::{guard, Control, MAX_BODY_BYTES};
use crate::change::{Change, Source};
use crate::live::LiveError;

const PAGE: &str = include_str!("page.html");
/// How long a request's body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a change may take to apply before the answer gives up waiting.
const APPLY_WAIT: Duration = Duration::from_secs(2);

pub(super) type Answer = Response<Full<Bytes>>;

pub(super) fn json_answer(status: StatusCode, body: &Value) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub(super) fn refuse(status: StatusCode, message: impl std::fmt::Display) -> Answer {
    json_answer(status, &json!({ "error": message.to_string() }))
}

/// The answer to one request.
pub async fn answer(control: &Control, req: Request<Incoming>) -> Answer {
    if let Err((status, message)) =
        guard::check(req.method(), req.headers(), control.token.as_deref())
    {
        return refuse(status, message);
    }
    let source = match req.headers().get("x-loadgen-source").map(|v| v.as_bytes()) {
        Some(b"page") => Source::Page,
        _ => Source::Api,
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    // Reads take no body: one is left unread (and the connection closed after the answer),
    // so a slow body cannot hold a connection on a call that needs no token.
    let body = if matches!(method, Method::GET | Method::HEAD) {
        Bytes::new()
    } else {
        match read_body(req).await {
            Ok(b) => b,
            Err((status, message)) => return refuse(status, message),
        }
    };
    match (method, path.as_str()) {
        (Method::GET, "/") => page(),
        (Method::GET, "/api/v1/state") => json_answer(StatusCode::OK, &state(control).await),
        (Method::PUT, "/api/v1/rates") => rates(control, &body, source).await,
        (m @ (Method::GET | Method::POST | Method::DELETE), "/api/v1/faults") => {
            faults(control, m, &body, source).await
        }
        (Method::POST, "/api/v1/scenario") => start_scenario(control, &body, source).await,
        (Method::DELETE, "/api/v1/scenario") => stop_scenario(control, source).await,
        (Method::POST, "/api/v1/stop") => {
            control.live.request_stop(source);
            json_answer(StatusCode::ACCEPTED, &json!({"stopping": true}))
        }
        (
            _,
            "/" | "/api/v1/state" | "/api/v1/rates" | "/api/v1/faults" | "/api/v1/scenario"
            | "/api/v1/stop",
        ) => refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed on this path",
        ),
        _ => refuse(
            StatusCode::NOT_FOUND,
            "no such path: see GET / or /api/v1/state",
        ),
    }
}

/// The body, at most [`MAX_BODY_BYTES`]; a larger one is refused before it is read whole.
async fn read_body(req: Request<Incoming>) -> Result<Bytes, Failure> {
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let read = Limited::new(req.into_body(), MAX_BODY_BYTES).collect();
    let Ok(read) = tokio::time::timeout(BODY_TIMEOUT, read).await else {
        return Err((
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ),
        ));
    };
    match read {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err((
            StatusCode::BAD_REQUEST,
            format!("reading the body failed: {e}"),
        )),
    }
}

fn page() -> Answer {
    let mut r = Response::new(Full::new(Bytes::from_static(PAGE.as_bytes())));
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The page loads nothing from anywhere and talks only to this API; no other page frames it.
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

/// Submits a change and answers the state once the dispatch core applied it.
pub(super) async fn submit(
    control: &Control,
    change: Change,
    source: Source,
    status: StatusCode,
) -> Answer {
    match control.live.submit(change, source) {
        Ok(version) => {
            if !control.live.applied(version, APPLY_WAIT).await {
                return refuse(
                    StatusCode::CONFLICT,
                    "the run stopped before the change applied",
                );
            }
            json_answer(status, &state(control).await)
        }
        Err(e @ LiveError::Busy) => refuse(StatusCode::TOO_MANY_REQUESTS, e),
        Err(e @ LiveError::Over) => refuse(StatusCode::CONFLICT, e),
    }
}

/// A refusal before an answer is made: its status and message.
pub(super) type Failure = (StatusCode, String);

pub(super) fn parse_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, Failure> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err((
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object".into(),
        )),
        Err(e) => Err((
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}"),
        )),
    }
}

async fn rates(control: &Control, body: &[u8], source: Source) -> Answer {
    let _one = control.changing.lock().await;
    let m = match parse_object(body) {
        Ok(m) => m,
        Err((status, message)) => return refuse(status, message),
    };
    let mut rates = [None, None];
    for (k, v) in &m {
        let Some(t) = OrderType::ALL.into_iter().find(|t| t.as_str() == k) else {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown field {:?}: give \"food\" and/or \"clothing\"",
                    clip(k)
                ),
            );
        };
        match v.as_f64() {
            Some(r) if r.is_finite() && r >= 0.0 => rates[t.index()] = Some(r),
            _ => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    format!("{k} must be a number of requests per second, 0 or more"),
                )
            }
        }
    }
    if rates == [None, None] {
        return refuse(
            StatusCode::BAD_REQUEST,
            "give \"food\" and/or \"clothing\" in requests per second",
        );
    }
    let now = control.live.rates_at(control.live.elapsed());
    let total: f64 = OrderType::ALL
        .iter()
        .map(|t| rates[t.index()].unwrap_or(now[t.index()]))
        .sum();
    if total > control.max_rate {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "the total rate {total}/s is over --max-rate {}/s",
                control.max_rate
            ),
        );
    }
    submit(control, Change::Rates(rates), source, StatusCode::OK).await
}

async fn faults(control: &Control, method: Method, body: &[u8], source: Source) -> Answer {
    let Some(admin) = &control.admin else {
        return refuse(
            StatusCode::CONFLICT,
            "no fault API: start the load generator with --admin-url (the server's --admin-listen address) and --admin-token if it has one",
        );
    };
    let fault = match method {
        Method::POST => match serde_json::from_slice::<FaultRequest>(body) {
            Ok(f) => Some(f),
            Err(e) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    format!("invalid fault request: {e}"),
                )
            }
        },
        _ => None,
    };
    let m = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap_or(reqwest::Method::GET);
    match admin.forward(m, fault.as_ref()).await {
        Ok((status, text)) => {
            if status.is_success() {
                match (&method, &fault) {
                    (&Method::POST, Some(f)) => control.live.fault_on(f, source),
                    (&Method::DELETE, _) => control
                        .live
                        .faults_cleared("all faults cleared".into(), source),
                    _ => {}
                }
            }
            let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let body = serde_json::from_str::<Value>(&text)
                .unwrap_or_else(|_| json!({ "error": clip(&text) }));
            json_answer(status, &body)
        }
        Err(e) => refuse(
            StatusCode::BAD_GATEWAY,
            format!("the fault API failed: {e}"),
        ),
    }
}

/// Echoed input, at most 200 characters.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 200;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}… ({} bytes)", &s[..i], s.len()),
        None => s.to_string(),
    }
}
