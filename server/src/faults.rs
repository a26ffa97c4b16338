//! Injected faults for alert drills: parsing and validating fault requests from the admin API,
//! the table of active faults with their expiry, and the combined effect on one order. Faults
//! always expire on their own, so a forgotten drill cannot break the service for long.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::contract::{FaultKind, OrderType};

/// Shortest a single fault may last: a drill has to be seen by a scrape.
pub const MIN_FAULT_DURATION: Duration = Duration::from_secs(1);
/// Longest a single fault may last.
pub const MAX_FAULT_DURATION: Duration = Duration::from_secs(3600);
/// Largest extra latency a fault may add.
pub const MAX_EXTRA_LATENCY: Duration = Duration::from_secs(30);

/// A fault request as posted to `POST /admin/faults`; the load generator's scenarios post the
/// same type.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    /// `errors`, `latency` or `stall`.
    pub kind: String,
    /// `food`, `clothing`; absent means both. A string here (not the enum) so that a bad
    /// value gets an answer naming the field rather than serde's "unknown variant".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_type: Option<String>,
    /// How long the fault lasts, e.g. `"90s"`. Required: empty is refused by `validate`
    /// (a scenario phase fills it in from the phase's length).
    #[serde(default)]
    pub duration: String,
    /// For `errors`: probability that an order fails, 0 < p <= 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// For `latency`: extra processing time, e.g. `"400ms"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_latency: Option<String>,
}

/// Why a fault request was refused; the message is sent back in the 400 answer.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultError {
    #[error("kind: expected one of errors, latency, stall; got {0:?}")]
    Kind(String),
    #[error("duration: {0}")]
    Duration(String),
    #[error("error_rate: required for kind errors, a number with 0 < error_rate <= 1")]
    ErrorRate,
    #[error(
        "extra_latency: required for kind latency, a duration from 1ms to 30s such as \"400ms\""
    )]
    ExtraLatency,
    #[error("order_type: expected food or clothing (or leave it out for both); got {0:?}")]
    OrderType(String),
    #[error("{field}: not used by kind {kind}")]
    Unused {
        field: &'static str,
        kind: &'static str,
    },
}

/// A validated fault, ready to be activated.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    pub order_types: Vec<OrderType>,
    pub duration: Duration,
    pub error_rate: f64,
    pub extra_latency: Duration,
}

/// What a fault request looks like, for the answer to one that does not.
pub const FAULT_REQUEST_SHAPE: &str =
    "a JSON object with kind, duration and, as the kind needs, order_type, error_rate or extra_latency";

impl FaultRequest {
    /// Reads a request body. Only a JSON object is a fault request (serde would also read an
    /// array field by field, and name the Rust type when it fails).
    pub fn from_json(body: &[u8]) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
        if !value.is_object() {
            return Err(format!("expected {FAULT_REQUEST_SHAPE}"));
        }
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    pub fn validate(self) -> Result<Fault, FaultError> {
        let kind = match self.kind.as_str() {
            "errors" => FaultKind::Errors,
            "latency" => FaultKind::Latency,
            "stall" => FaultKind::Stall,
            _ => return Err(FaultError::Kind(self.kind)),
        };
        if self.duration.is_empty() {
            return Err(FaultError::Duration(
                "required, from 1s to 1h, e.g. \"90s\"".into(),
            ));
        }
        let duration = humantime::parse_duration(&self.duration).map_err(|e| {
            FaultError::Duration(format!("{:?} is not a duration ({e})", self.duration))
        })?;
        if duration < MIN_FAULT_DURATION || duration > MAX_FAULT_DURATION {
            return Err(FaultError::Duration(format!(
                "{:?} is out of range: from 1s to 1h",
                self.duration
            )));
        }
        let unused = |field| FaultError::Unused {
            field,
            kind: kind.as_str(),
        };
        let mut error_rate = 0.0;
        let mut extra_latency = Duration::ZERO;
        match kind {
            FaultKind::Errors => {
                error_rate = self.error_rate.ok_or(FaultError::ErrorRate)?;
                if !(error_rate > 0.0 && error_rate <= 1.0) {
                    return Err(FaultError::ErrorRate);
                }
                if self.extra_latency.is_some() {
                    return Err(unused("extra_latency"));
                }
            }
            FaultKind::Latency => {
                let raw = self.extra_latency.ok_or(FaultError::ExtraLatency)?;
                extra_latency =
                    humantime::parse_duration(&raw).map_err(|_| FaultError::ExtraLatency)?;
                if extra_latency < Duration::from_millis(1) || extra_latency > MAX_EXTRA_LATENCY {
                    return Err(FaultError::ExtraLatency);
                }
                if self.error_rate.is_some() {
                    return Err(unused("error_rate"));
                }
            }
            FaultKind::Stall => {
                if self.error_rate.is_some() {
                    return Err(unused("error_rate"));
                }
                if self.extra_latency.is_some() {
                    return Err(unused("extra_latency"));
                }
            }
        }
        let order_types = match self.order_type {
            None => OrderType::ALL.to_vec(),
            Some(name) => match OrderType::ALL.into_iter().find(|t| t.as_str() == name) {
                Some(t) => vec![t],
                None => return Err(FaultError::OrderType(name)),
            },
        };
        Ok(Fault {
            kind,
            order_types,
            duration,
            error_rate,
            extra_latency,
        })
    }
}

/// The combined effect of the active faults on one order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultEffect {
    pub extra_error_rate: f64,
    pub extra_latency: Duration,
    /// Orders wait until this instant before being processed.
    pub stall_until: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Active {
    until: Instant,
    error_rate: f64,
    extra_latency: Duration,
}

/// One active fault as listed by `GET /admin/faults`.
#[derive(Debug, Serialize, PartialEq)]
pub struct ActiveFault {
    pub order_type: OrderType,
    pub kind: &'static str,
    pub remaining_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_latency_ms: Option<f64>,
}

/// Active faults per order type and kind; a later fault of the same slot replaces the earlier.
#[derive(Debug, Default)]
pub struct FaultTable {
    slots: Mutex<[[Option<Active>; 3]; 2]>,
    /// Whether any slot may be set: every order asks for its effect, and without a drill
    /// running (nearly always) the answer needs no lock.
    armed: AtomicBool,
    /// Woken when the table changes, so stalled orders notice a stall cleared or replaced.
    changed: Notify,
}

impl FaultTable {
    pub fn activate(&self, fault: &Fault, now: Instant) {
        let mut slots = self.lock();
        self.armed.store(true, Ordering::Release);
        for t in &fault.order_types {
            slots[t.index()][fault.kind.index()] = Some(Active {
                until: now + fault.duration,
                error_rate: fault.error_rate,
                extra_latency: fault.extra_latency,
            });
        }
        drop(slots);
        self.changed.notify_waiters();
    }

    pub fn clear(&self) {
        let mut slots = self.lock();
        *slots = Default::default();
        self.armed.store(false, Ordering::Release);
        drop(slots);
        self.changed.notify_waiters();
    }

    /// Holds an order of type `t` for as long as a stall of its type lasts: until the stall
    /// ends, or at once when the stall is cleared or shortened (a drill that is called off
    /// releases the orders it held).
    pub async fn wait_out_stall(&self, t: OrderType) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before reading the table, so a change in between is not missed.
            changed.as_mut().enable();
            let Some(until) = self.effect(t, Instant::now()).stall_until else {
                return;
            };
            tokio::select! {
                () = tokio::time::sleep_until(until) => return,
                () = &mut changed => {}
            }
        }
    }

    pub fn effect(&self, t: OrderType, now: Instant) -> FaultEffect {
        if !self.armed.load(Ordering::Acquire) {
            return FaultEffect::default();
        }
        let slots = self.lock();
        let live = |k: FaultKind| slots[t.index()][k.index()].filter(|a| a.until > now);
        FaultEffect {
            extra_error_rate: live(FaultKind::Errors).map_or(0.0, |a| a.error_rate),
            extra_latency: live(FaultKind::Latency).map_or(Duration::ZERO, |a| a.extra_latency),
            stall_until: live(FaultKind::Stall).map(|a| a.until),
        }
    }

    /// Whether each (order type, kind) slot is active now, for the `fault_active` gauge.
    pub fn active_matrix(&self, now: Instant) -> [[bool; 3]; 2] {
        let slots = self.lock();
        slots.map(|row| row.map(|s| s.is_some_and(|a| a.until > now)))
    }

    pub fn list(&self, now: Instant) -> Vec<ActiveFault> {
        let slots = self.lock();
        let mut out = Vec::new();
        for t in OrderType::ALL {
            for k in FaultKind::ALL {
                if let Some(a) = slots[t.index()][k.index()].filter(|a| a.until > now) {
                    out.push(ActiveFault {
                        order_type: t,
                        kind: k.as_str(),
                        remaining_seconds: (a.until - now).as_secs_f64(),
                        error_rate: (k == FaultKind::Errors).then_some(a.error_rate),
                        extra_latency_ms: (k == FaultKind::Latency)
                            .then_some(a.extra_latency.as_secs_f64() * 1000.0),
                    });
                }
            }
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [[Option<Active>; 3]; 2]> {
        // The table holds plain data; a panic elsewhere cannot leave it half-written.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: &str) -> Result<Fault, String> {
        let r: FaultRequest = serde_json::from_str(json).map_err(|e| e.to_string())?;
        r.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn valid_requests() {
        let f = req(r#"{"kind":"errors","order_type":"food","duration":"90s","error_rate":0.5}"#)
            .expect("valid");
        assert_eq!(f.kind, FaultKind::Errors);
        assert_eq!(f.order_types, vec![OrderType::Food]);
        assert_eq!(f.duration, Duration::from_secs(90));
        let f =
            req(r#"{"kind":"latency","duration":"1m","extra_latency":"400ms"}"#).expect("valid");
        assert_eq!(f.order_types.len(), 2);
        assert_eq!(f.extra_latency, Duration::from_millis(400));
        req(r#"{"kind":"stall","duration":"5s"}"#).expect("valid");
    }

    #[test]
    fn invalid_requests_say_why() {
        let cases = [
            (r#"{"kind":"boom","duration":"1s"}"#, "kind"),
            (r#"{"kind":"errors","duration":"1s"}"#, "error_rate"),
            (
                r#"{"kind":"errors","duration":"1s","error_rate":2}"#,
                "error_rate",
            ),
            (
                r#"{"kind":"errors","duration":"2h","error_rate":0.1}"#,
                "duration",
            ),
            (
                r#"{"kind":"errors","duration":"soon","error_rate":0.1}"#,
                "duration",
            ),
            (r#"{"kind":"latency","duration":"1s"}"#, "extra_latency"),
            (
                r#"{"kind":"latency","duration":"1s","extra_latency":"5m"}"#,
                "extra_latency",
            ),
            (
                r#"{"kind":"stall","duration":"1s","error_rate":0.1}"#,
                "error_rate",
            ),
            (
                r#"{"kind":"stall","duration":"1s","order_type":"shoes"}"#,
                "order_type: expected food or clothing",
            ),
            (
                r#"{"kind":"stall","duration":"1s","colour":"red"}"#,
                "unknown field",
            ),
        ];
        for (json, needle) in cases {
            let err = req(json).expect_err(json);
            assert!(err.contains(needle), "{json}: {err}");
        }
    }

    #[test]
    fn faults_expire_and_apply_per_type() {
        let table = FaultTable::default();
        let now = Instant::now();
        let fault =
            req(r#"{"kind":"errors","order_type":"clothing","duration":"10s","error_rate":0.3}"#)
                .expect("valid");
        table.activate(&fault, now);
        assert_eq!(table.effect(OrderType::Clothing, now).extra_error_rate, 0.3);
        assert_eq!(table.effect(OrderType::Food, now).extra_error_rate, 0.0);
        assert!(table.active_matrix(now)[OrderType::Clothing.index()][FaultKind::Errors.index()]);
        let later = now + Duration::from_secs(11);
        assert_eq!(
            table.effect(OrderType::Clothing, later),
            FaultEffect::default()
        );
        assert!(table.list(later).is_empty());
        table.activate(&fault, now);
        table.clear();
        assert!(table.list(now).is_empty());
    }
}
