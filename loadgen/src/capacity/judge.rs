//! One capacity step judged, without I/O: its thresholds over the span judged (after the
//! warm-up), whether the generator kept its schedule in that span, and the early-end rule.
//!
//! The early end is sound, never a guess: a `pQ < L` threshold over a step of n requests
//! fails when more than (1 − Q)·n of them took longer than L. The step's n is at most its
//! asked count plus five standard deviations of a Poisson count (about one in 3.5 million
//! steps has more), so once the slow requests seen so far exceed (1 − Q) of that bound, no
//! later sample can bring the step back, and it ends. The same holds for an error-ratio
//! threshold with failed requests. Overload steps are cut after a tick or two.
//!
//! Whose failure it is: corrected latency is the schedule lag plus the service time, so a
//! step where the generator fell behind could fail by its own lag. A step fails as the
//! service's when the thresholds fail on the service time alone (from the actual send),
//! lag or not; otherwise a generator that fell behind makes the step `generator_limited`.
//! The early end counts slow requests by service time too, so a lagging generator never
//! cuts a step short on its own account.

use hdrhistogram::Histogram;
use order_server::contract::OrderType;

use crate::monitor::Span;
use crate::recorder::{Counts, Window};
use crate::threshold::{Check, Metric, Op, Thresholds};

/// A judged span, summed over both types.
#[derive(Debug, Clone)]
pub struct Judged {
    pub checks: Vec<Check>,
    pub passed: bool,
    pub generator_limited: bool,
    /// The thresholds fail on service time alone: the service's failure, lag or not.
    pub service_failed: bool,
    pub total: Counts,
    pub corrected: Histogram<u64>,
    pub lag_p99_ms: Option<f64>,
}

/// The thresholds over `span`, and whether the generator was behind in it: its schedule lag
/// p99 over `lag_limit`, or late or skipped sends.
pub fn judge(thresholds: &Thresholds, span: &Span, lag_limit: std::time::Duration) -> Judged {
    let total = span.counts[0].plus(&span.counts[1]);
    let mut all = span.windows[0].clone();
    all.add(&span.windows[1]);
    let checks = thresholds.judge(|scope| match scope {
        Some(t) => (span.counts[t.index()], &span.windows[t.index()].corrected),
        None => (total, &all.corrected),
    });
    let on_service = thresholds.judge(|scope| match scope {
        Some(t) => (span.counts[t.index()], &span.windows[t.index()].service),
        None => (total, &all.service),
    });
    let lag_p99_ms = (!all.lag.is_empty()).then(|| all.lag.value_at_quantile(0.99) as f64 / 1000.0);
    let generator_limited = lag_p99_ms.is_some_and(|l| l > lag_limit.as_secs_f64() * 1000.0)
        || total.late > 0
        || total.skipped > 0;
    Judged {
        passed: checks.iter().all(|c| c.passed),
        service_failed: on_service.iter().any(|c| !c.passed),
        checks,
        generator_limited,
        total,
        corrected: all.corrected,
        lag_p99_ms,
    }
}

/// The threshold a step has already failed beyond recovery, if any: `asked` is each type's
/// rate and `seconds` the length of the whole span judged.
pub fn clearly_failed(
    thresholds: &Thresholds,
    span: &Span,
    asked: [f64; 2],
    seconds: f64,
) -> Option<String> {
    let shorthands = thresholds.shorthands();
    for t in shorthands.iter().chain(&thresholds.exprs) {
        if !matches!(t.op, Op::Lt | Op::Le) {
            continue;
        }
        let types: Vec<OrderType> = match t.scope {
            Some(o) => vec![o],
            None => OrderType::ALL.to_vec(),
        };
        let n: f64 = types.iter().map(|o| asked[o.index()]).sum::<f64>() * seconds;
        let n_max = n + 5.0 * n.sqrt() + 1.0;
        let mut window = Window::new();
        let mut counts = Counts::default();
        for o in &types {
            window.add(&span.windows[o.index()]);
            counts = counts.plus(&span.counts[o.index()]);
        }
        let (bad, allowed) = match t.metric {
            Metric::Percentile(q) => {
                let limit_us = (t.limit * 1000.0).max(0.0) as u64;
                let h = &window.service;
                let within = if h.is_empty() {
                    0
                } else {
                    h.count_between(0, limit_us)
                };
                (h.len().saturating_sub(within) as f64, (1.0 - q) * n_max)
            }
            Metric::ErrorRatio => ((counts.completed() - counts.ok()) as f64, t.limit * n_max),
            Metric::AchievedRatio => continue,
        };
        if bad > allowed {
            return Some(t.text.clone());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(latencies_ms: &[(u64, u64)], failed: u64, late: u64) -> Span {
        let mut w = Window::new();
        let mut c = Counts::default();
        for &(ms, n) in latencies_ms {
            w.corrected.record_n(ms * 1000, n).expect("in range");
            w.service.record_n(ms * 1000, n).expect("in range");
            c.outcomes[0] += n;
        }
        c.outcomes[2] += failed;
        c.late = late;
        c.scheduled = c.completed();
        w.lag.record_n(50, c.completed().max(1)).expect("in range");
        Span {
            seconds: 5.0,
            counts: [c, Counts::default()],
            windows: [w, Window::new()],
        }
    }

    fn thresholds(exprs: &[&str]) -> Thresholds {
        Thresholds {
            exprs: exprs
                .iter()
                .map(|e| e.parse().expect("threshold"))
                .collect(),
            ..Thresholds::default()
        }
    }

    #[test]
    fn a_step_passes_fails_or_measures_the_generator() {
        let t = thresholds(&["p99<100ms", "error_ratio<0.01"]);
        let judge = |t: &Thresholds, s: &Span| judge(t, s, std::time::Duration::from_millis(1));
        let ok = judge(&t, &span(&[(10, 990), (50, 10)], 0, 0));
        assert!(ok.passed && !ok.generator_limited, "{ok:?}");
        let slow = judge(&t, &span(&[(10, 900), (500, 100)], 0, 0));
        assert!(!slow.passed);
        assert_eq!(slow.checks.iter().filter(|c| !c.passed).count(), 1);
        let late = judge(&t, &span(&[(10, 1000)], 0, 3));
        assert!(late.passed && late.generator_limited && !late.service_failed);
        // Slow by the generator's lag only: corrected fails, service time passes.
        let mut lagging = span(&[(10, 1000)], 0, 50);
        lagging.windows[0]
            .corrected
            .record_n(400_000, 100)
            .expect("in range");
        let j = judge(&t, &lagging);
        assert!(!j.passed && !j.service_failed && j.generator_limited);
        // Slow at the service, however late the generator: the service's failure.
        let j = judge(&t, &span(&[(10, 900), (500, 100)], 0, 50));
        assert!(j.service_failed && j.generator_limited);
    }

    #[test]
    fn a_step_ends_early_only_when_no_later_sample_can_save_it() {
        let t = thresholds(&["p99<100ms"]);
        // 100/s asked over 10 s: at most 1000 + 5 x 31.6 + 1 = 1159 requests; 1 % of them
        // is 11.6, so 12 slow requests decide it, 11 do not.
        let eleven = span(&[(10, 200), (300, 11)], 0, 0);
        assert_eq!(clearly_failed(&t, &eleven, [100.0, 0.0], 10.0), None);
        let twelve = span(&[(10, 200), (300, 12)], 0, 0);
        assert_eq!(
            clearly_failed(&t, &twelve, [100.0, 0.0], 10.0),
            Some("p99<100ms".into())
        );
        let errors = thresholds(&["food.error_ratio<0.05"]);
        let failing = span(&[(10, 100)], 60, 0);
        assert_eq!(
            clearly_failed(&errors, &failing, [100.0, 0.0], 10.0),
            Some("food.error_ratio<0.05".into())
        );
        let clothing = thresholds(&["clothing.error_ratio<0.05"]);
        assert_eq!(
            clearly_failed(&clothing, &failing, [100.0, 100.0], 10.0),
            None,
            "food's failures are another scope"
        );
        let floor = thresholds(&["achieved_ratio>0.99"]);
        assert_eq!(clearly_failed(&floor, &failing, [100.0, 0.0], 10.0), None);
    }
}
