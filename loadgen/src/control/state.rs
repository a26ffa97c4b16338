//! The control API's `GET /api/v1/state`: the live state as one JSON object (the README's
//! "Steer the demo live" lists the fields), read from the live state and its monitor, with
//! the server's active faults when a fault API is configured.

use std::time::Duration;

use order_server::contract::OrderType;
use serde_json::{json, Value};

use super::Control;
use crate::scenario::BUILTIN;

/// How long the state waits for the fault API's list of faults.
const FAULTS_WAIT: Duration = Duration::from_secs(1);
/// Events the state carries (the report has them all).
const STATE_EVENTS: usize = 100;

/// The live state: see the README's "Steer the demo live" for the fields.
pub async fn state(control: &Control) -> Value {
    let live = &control.live;
    let now = live.elapsed();
    let plan = live.plan();
    let phase = plan.phase_at(now).map(|(i, _)| plan.phases[i].name.clone());
    let rates = live.rates_at(now);
    let (recent, history, in_flight, counts) = {
        let mut m = live.monitor.lock().unwrap_or_else(|e| e.into_inner());
        (m.recent(), m.history(), m.in_flight(), m.counts())
    };
    let faults = match &control.admin {
        None => Value::Null,
        Some(a) => {
            match tokio::time::timeout(FAULTS_WAIT, a.forward(reqwest::Method::GET, None)).await {
                Ok(Ok((s, body))) if s.is_success() => serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("faults").cloned())
                    .unwrap_or(Value::Null),
                _ => json!({"error": "the fault API did not answer"}),
            }
        }
    };
    let (events, dropped) = live.recent_events(STATE_EVENTS);
    let per_type = |f: &dyn Fn(OrderType) -> Value| json!({"food": f(OrderType::Food), "clothing": f(OrderType::Clothing)});
    json!({
        "elapsed_s": now,
        "phase": phase,
        "running": !live.is_over(),
        "stopping": live.stop_requested(),
        "end_s": live.end(),
        "rates": per_type(&|t| json!(rates[t.index()])),
        "recent": per_type(&|t| json!(recent[t.index()])),
        "errors": per_type(&|t| {
            let c = counts[t.index()];
            json!(c.completed() - c.ok())
        }),
        "completed": per_type(&|t| json!(counts[t.index()].completed())),
        "in_flight": in_flight,
        "faults": faults,
        "fault_api": control.admin.is_some(),
        "scenario": live.scenario(now),
        "scenarios": drills(),
        "max_rate": control.max_rate,
        "token_required": control.token.is_some(),
        "events": events,
        "events_dropped": dropped,
        "history": history,
    })
}

/// The bundled scenarios the API can start: those with a fixed length (the others run until
/// stopped, which a rate change does better). Read once.
fn drills() -> &'static [&'static str] {
    static DRILLS: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    DRILLS.get_or_init(|| {
        BUILTIN
            .iter()
            .filter(|(n, _)| {
                crate::scenario::Scenario::load(n, 1).is_ok_and(|s| s.plan.length().is_some())
            })
            .map(|(n, _)| *n)
            .collect()
    })
}
