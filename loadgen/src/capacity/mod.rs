//! `loadgen capacity`: the highest rate a service holds within its thresholds, found by one
//! open-model run whose rate the search steps live (a front-end of [`crate::live`], like the
//! control API: connections stay open, arrivals go on without a burst). Each step holds its
//! rate for `--step`; its first `--warmup` is not judged; the rest is judged by the
//! thresholds on the monitor's windows ([`judge`]), and a step that has failed beyond
//! recovery ends early. [`search`] decides the next rate; [`report`] and [`html`] show the
//! answer. A step where the generator itself fell behind answers for the generator, and the
//! result says so.

pub mod cli;
pub mod html;
pub mod judge;
pub mod report;
pub mod search;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use order_server::contract::OrderType;

use crate::change::{Change, Source};
use crate::config::RunConfig;
use crate::live::Live;
use crate::outcome::OutcomeClass;
use crate::run::RunError;
use crate::schedule::{Plan, Profile, Shape};
use report::{CapacityReport, Mix, Settings, StepReport};
use search::{Next, Search, Verdict};

/// How the search steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchConfig {
    pub start_rate: f64,
    pub step: Duration,
    pub warmup: Duration,
    pub growth: f64,
    pub precision: f64,
    pub max_rate: f64,
    pub max_duration: Duration,
    /// The schedule lag p99 above which a step measured the generator.
    pub generator_lag: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("nothing answered at {0} during the first step: is the target up?")]
    Unreachable(String),
    #[error("the load stopped before the search was done: {0}")]
    RunEnded(String),
}

/// Searches the capacity of `run`'s target with `run`'s mix, client and thresholds.
/// `progress` gets a line per step; `stop` ends the search with what it knows.
pub async fn search(
    mut run: RunConfig,
    cfg: SearchConfig,
    stop: impl Future<Output = ()>,
    mut progress: impl FnMut(&str),
) -> Result<CapacityReport, CapacityError> {
    let base = run.plan.phases[0].profile.rates;
    let sum = (base[0] + base[1]).max(f64::MIN_POSITIVE);
    let mix = Mix {
        food: base[0] / sum,
        clothing: base[1] / sum,
    };
    let rates_for = |r: f64| [r * mix.food, r * mix.clothing];
    let (mut search, mut rate) =
        Search::new(cfg.start_rate, cfg.growth, cfg.precision, cfg.max_rate);
    let mut plan = Plan::single(Profile {
        shape: Shape::Constant,
        rates: rates_for(rate),
        flash_sales: None,
    });
    plan.shard = run.plan.shard;
    let live = Arc::new(Live::new(plan.clone(), None));
    let thresholds = run.thresholds.clone();
    let target = run
        .target
        .clone()
        .unwrap_or_else(|| "the embedded order server".into());
    run.plan = plan;
    run.live = Some(Arc::clone(&live));
    run.duration = None;
    run.requests = None;
    run.series = false;
    run.progress = false;
    let (stop_run, run_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut load = tokio::spawn(crate::run::run(run, async {
        let _ = run_stopped.await;
    }));
    while live.started_at().is_none() {
        if load.is_finished() {
            return Err(match (&mut load).await {
                Ok(Err(e)) => e.into(),
                Ok(Ok(_)) => CapacityError::RunEnded("before the first step".into()),
                Err(e) => CapacityError::RunEnded(e.to_string()),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    tokio::pin!(stop);
    let mut steps = Vec::new();
    let outcome = loop {
        let index = steps.len();
        if index > 0 {
            let rates = rates_for(rate);
            if let Ok(v) = live.submit(Change::Rates(rates.map(Some)), Source::Capacity) {
                live.applied(v, Duration::from_secs(2)).await;
            }
        }
        let step_start = Instant::now();
        // The warm-up, then a mark: what the step is judged on starts at the next tick.
        let over = wait(&live, &mut stop, &load, step_start + cfg.warmup).await;
        if let Some(why) = over {
            break search.stopped(why);
        }
        live.monitor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .mark();
        let judged = cfg.step.saturating_sub(cfg.warmup).as_secs_f64();
        let mut ended_early = false;
        let mut interrupted = None;
        let mut seen = live.ticks();
        loop {
            let span = since_mark(&live);
            if span.seconds >= judged - 1e-3 {
                break;
            }
            if judge::clearly_failed(&thresholds, &span, rates_for(rate), judged).is_some() {
                ended_early = true;
                break;
            }
            // The next tick, or a stop.
            let deadline = Instant::now() + Duration::from_secs(3);
            while live.ticks() == seen && interrupted.is_none() {
                interrupted = wait(
                    &live,
                    &mut stop,
                    &load,
                    Instant::now() + Duration::from_millis(20),
                )
                .await;
                if Instant::now() > deadline {
                    interrupted = Some("the load stopped ticking");
                }
            }
            if interrupted.is_some() {
                break;
            }
            seen = live.ticks();
        }
        if let Some(why) = interrupted {
            break search.stopped(why);
        }
        let span = since_mark(&live);
        let j = judge::judge(&thresholds, &span, cfg.generator_lag);
        let connect = j.total.outcomes[OutcomeClass::ConnectError.index()];
        if index == 0 && j.total.completed() == connect && span.seconds > 0.0 {
            live.request_stop(Source::Capacity);
            let _ = stop_run.send(());
            let _ = load.await;
            return Err(CapacityError::Unreachable(target));
        }
        let verdict = if j.generator_limited && !j.service_failed {
            Verdict::GeneratorLimited
        } else if j.passed {
            Verdict::Pass
        } else {
            let failed = j.checks.iter().find(|c| !c.passed).map(|c| c.name.clone());
            Verdict::Fail(failed.unwrap_or_default())
        };
        let step = step_report(
            index,
            rate,
            rates_for(rate),
            &span,
            &j,
            &verdict,
            ended_early,
        );
        let next = search.record(rate, verdict);
        let (pass, fail) = search.interval();
        progress(&format!(
            "step {index}: {:.1}/s, p99 {} ms, {}; the capacity lies in [{}, {}]",
            rate,
            step.p99_ms.map_or("-".into(), |v| format!("{v:.1}")),
            step.verdict,
            pass.map_or("-".into(), |p| format!("{p:.1}")),
            fail.map_or("-".into(), |f| format!("{f:.1}")),
        ));
        steps.push(step);
        match next {
            Next::Step(r) => rate = r,
            Next::Done(o) => break o,
        }
        if started.elapsed() + cfg.step > cfg.max_duration {
            break search.stopped("max_duration");
        }
        // A step that failed can leave a queue at the target that would fail the next one
        // too: the load pauses until the requests in flight are answered (at most a step).
        if matches!(steps.last().map(|s| s.verdict), Some("fail")) {
            let drained = drain(&live, &mut stop, &load, cfg.step).await;
            if let Some(s) = steps.last_mut() {
                s.drain_seconds = drained;
            }
        }
    };
    live.request_stop(Source::Capacity);
    let _ = stop_run.send(());
    let target = match load.await {
        Ok(Ok(r)) => r.target,
        _ => target,
    };
    Ok(CapacityReport {
        schema_version: report::SCHEMA_VERSION,
        kind: "capacity",
        loadgen_version: env!("CARGO_PKG_VERSION").to_string(),
        target: crate::redact::without_credentials(&target).into_owned(),
        started_at: live
            .started_at()
            .map(|t| humantime::format_rfc3339_millis(t).to_string()),
        duration_seconds: started.elapsed().as_secs_f64(),
        mix,
        thresholds: thresholds
            .shorthands()
            .iter()
            .chain(&thresholds.exprs)
            .map(|t| t.text.clone())
            .collect(),
        settings: Settings {
            start_rate: cfg.start_rate,
            step_seconds: cfg.step.as_secs_f64(),
            warmup_seconds: cfg.warmup.as_secs_f64(),
            growth: cfg.growth,
            precision: cfg.precision,
            max_rate: cfg.max_rate,
            max_duration_seconds: cfg.max_duration.as_secs_f64(),
            generator_lag_ms: cfg.generator_lag.as_secs_f64() * 1000.0,
        },
        capacity: outcome,
        steps,
    })
}

/// Pauses the load until nothing is in flight, at most `limit`: the seconds it took.
async fn drain<T>(
    live: &Live,
    stop: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    load: &tokio::task::JoinHandle<T>,
    limit: Duration,
) -> f64 {
    let start = Instant::now();
    if let Ok(v) = live.submit(Change::Rates([Some(0.0), Some(0.0)]), Source::Capacity) {
        live.applied(v, Duration::from_secs(2)).await;
    }
    let mut seen = live.ticks();
    while start.elapsed() < limit {
        if wait(live, stop, load, Instant::now() + Duration::from_millis(50))
            .await
            .is_some()
        {
            break;
        }
        let ticks = live.ticks();
        if ticks != seen {
            seen = ticks;
            let in_flight = live
                .monitor
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .in_flight();
            if in_flight == 0 {
                break;
            }
        }
    }
    start.elapsed().as_secs_f64()
}

/// Waits until `until`; why the search must stop instead, if it must.
async fn wait<T>(
    live: &Live,
    stop: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    load: &tokio::task::JoinHandle<T>,
    until: Instant,
) -> Option<&'static str> {
    let sleep = tokio::time::sleep_until(until.into());
    tokio::select! {
        () = stop.as_mut() => return Some("interrupted"),
        () = sleep => {}
    }
    if load.is_finished() || live.is_over() {
        return Some("the load stopped");
    }
    None
}

fn since_mark(live: &Live) -> crate::monitor::Span {
    let m = live.monitor.lock().unwrap_or_else(|e| e.into_inner());
    m.since_mark().unwrap_or_else(|| crate::monitor::Span {
        seconds: 0.0,
        counts: Default::default(),
        windows: Default::default(),
    })
}

fn step_report(
    index: usize,
    rate: f64,
    rates: [f64; 2],
    span: &crate::monitor::Span,
    j: &judge::Judged,
    verdict: &Verdict,
    ended_early: bool,
) -> StepReport {
    let q = |p: f64| {
        (!j.corrected.is_empty()).then(|| j.corrected.value_at_quantile(p) as f64 / 1000.0)
    };
    let completed = j.total.completed();
    StepReport {
        index,
        asked_rate: rate,
        food_rate: rates[OrderType::Food.index()],
        clothing_rate: rates[OrderType::Clothing.index()],
        achieved_rate: if span.seconds > 0.0 {
            completed as f64 / span.seconds
        } else {
            0.0
        },
        judged_seconds: span.seconds,
        ended_early,
        p50_ms: q(0.5),
        p90_ms: q(0.9),
        p99_ms: q(0.99),
        error_ratio: if completed > 0 {
            (completed - j.total.ok()) as f64 / completed as f64
        } else {
            0.0
        },
        lag_p99_ms: j.lag_p99_ms,
        late: j.total.late,
        skipped: j.total.skipped,
        verdicts: j.checks.clone(),
        verdict: match verdict {
            Verdict::Pass => "pass",
            Verdict::Fail(_) => "fail",
            Verdict::GeneratorLimited => "generator_limited",
        },
        generator_limited: j.generator_limited,
        drain_seconds: 0.0,
    }
}
