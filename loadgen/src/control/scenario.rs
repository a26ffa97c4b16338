//! The control API's `POST` and `DELETE /api/v1/scenario`: a bundled scenario (never a file:
//! the API reads nothing from disk) run from now, optionally faster, its faults switched by a
//! driver of its own that records each as an event; and cut short, its faults cleared.

use hyper::StatusCode;
use serde_json::Value;

use super::api::{clip, parse_object, refuse, submit, Answer};
use super::Control;
use crate::change::{Change, Source};
use crate::scenario::{Scenario, BUILTIN};

/// The fastest a scenario may be run (its phases and faults shortened by this factor).
const MAX_SPEED: f64 = 1000.0;

pub(super) async fn start_scenario(control: &Control, body: &[u8], source: Source) -> Answer {
    let _one = control.changing.lock().await;
    let m = match parse_object(body) {
        Ok(m) => m,
        Err((status, message)) => return refuse(status, message),
    };
    if let Some(k) = m.keys().find(|k| !matches!(k.as_str(), "name" | "speed")) {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown field {:?}: give \"name\" and optionally \"speed\"",
                clip(k)
            ),
        );
    }
    let bundled = BUILTIN
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ");
    let Some(name) = m.get("name").and_then(Value::as_str) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("give \"name\": one of {bundled}"),
        );
    };
    if !BUILTIN.iter().any(|(n, _)| *n == name) {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("{:?} is not a bundled scenario ({bundled})", clip(name)),
        );
    }
    let speed = match m.get("speed") {
        None => 1.0,
        Some(v) => match v.as_f64() {
            Some(s) if (1.0..=MAX_SPEED).contains(&s) => s,
            _ => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    format!("speed must be a number from 1 to {MAX_SPEED}"),
                )
            }
        },
    };
    if let Some(r) = control.live.scenario(control.live.elapsed()) {
        return refuse(
            StatusCode::CONFLICT,
            format!(
                "scenario {} is running: DELETE /api/v1/scenario first",
                r.name
            ),
        );
    }
    if control.live.run_faults_pending() {
        return refuse(
            StatusCode::CONFLICT,
            "this run's own scenario still has faults to switch on at set times: set rates with PUT /api/v1/rates (which ends it) first",
        );
    }
    let sc = match Scenario::load(name, control.seed) {
        Ok(s) => s.faster(speed),
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    if sc.plan.length().is_none() {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("{name} runs until stopped: set its rates with PUT /api/v1/rates instead"),
        );
    }
    let admin = match (&control.admin, sc.faults.is_empty()) {
        (_, true) => None,
        (Some(a), false) => Some(a.clone()),
        (None, false) => {
            return refuse(
                StatusCode::CONFLICT,
                format!(
                    "{name} switches server faults on: start the load generator with --admin-url"
                ),
            )
        }
    };
    let answer = submit(
        control,
        Change::Scenario {
            name: sc.name.clone(),
            phases: sc.plan.phases,
        },
        source,
        StatusCode::OK,
    )
    .await;
    if let (Some(admin), true) = (admin, answer.status().is_success()) {
        let live = std::sync::Arc::clone(&control.live);
        let task = tokio::spawn(crate::faults::drive(
            admin,
            sc.faults,
            tokio::time::Instant::now(),
            move |f| live.fault_on(&f.request, Source::Scenario),
        ));
        control
            .live
            .hold_driver(crate::live::Driver::Live, task.abort_handle());
    }
    answer
}

pub(super) async fn stop_scenario(control: &Control, source: Source) -> Answer {
    let _one = control.changing.lock().await;
    let Some(running) = control.live.scenario(control.live.elapsed()) else {
        return refuse(StatusCode::CONFLICT, "no scenario is running");
    };
    // Its fault driver stops as the change applies; the faults it switched on end now.
    let answer = submit(
        control,
        Change::EndScenario { to: running.to },
        source,
        StatusCode::OK,
    )
    .await;
    if let (Some(a), true) = (&control.admin, answer.status().is_success()) {
        if a.forward(reqwest::Method::DELETE, None).await.is_ok() {
            control
                .live
                .faults_cleared(format!("{}'s faults cleared", running.name), source);
        }
    }
    answer
}
