//! The capacity search's rule, without I/O: given each step's verdict, the next rate to try
//! or the answer. It grows the rate geometrically from the start until a step fails its
//! thresholds, then bisects between the last passing and the first failing rate until the
//! interval is within the precision asked. A step where the generator itself was behind ends
//! the search with a lower bound only; so does the rate cap. Table-tested below, including
//! noisy targets.

use serde::Serialize;

/// How a step went.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Pass,
    /// Failed this threshold (its expression): the first one missed.
    Fail(String),
    /// The generator was behind its schedule: the step measured the generator.
    GeneratorLimited,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// The capacity: the highest rate that passed, when the search found one.
    pub rate: Option<f64>,
    /// The highest rate that passed.
    pub lower: Option<f64>,
    /// The lowest rate that failed.
    pub upper: Option<f64>,
    /// What ended the search: the threshold that failed, `generator`, `max_rate`,
    /// `max_duration` or `interrupted`.
    pub bounded_by: String,
    /// Whether `rate` is the service's capacity within the precision asked (not a lower
    /// bound only, nor nothing).
    pub found: bool,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Step(f64),
    Done(Outcome),
}

/// The search's state; see the module documentation.
#[derive(Debug, Clone)]
pub struct Search {
    growth: f64,
    precision: f64,
    max_rate: f64,
    pass: Option<f64>,
    fail: Option<(f64, String)>,
}

impl Search {
    /// A search that starts at `start` (capped at `max_rate`): the first rate to step at.
    pub fn new(start: f64, growth: f64, precision: f64, max_rate: f64) -> (Self, f64) {
        let s = Search {
            growth,
            precision,
            max_rate,
            pass: None,
            fail: None,
        };
        (s, start.min(max_rate))
    }

    /// The step at `rate` went as `verdict`.
    pub fn record(&mut self, rate: f64, verdict: Verdict) -> Next {
        match verdict {
            Verdict::GeneratorLimited => {
                return Next::Done(self.lower_bound("generator"));
            }
            Verdict::Pass => {
                if self.pass.is_none_or(|p| rate > p) {
                    self.pass = Some(rate);
                }
            }
            Verdict::Fail(expr) => {
                if self.fail.as_ref().is_none_or(|(f, _)| rate < *f) {
                    self.fail = Some((rate, expr));
                }
            }
        }
        match (self.pass, &self.fail) {
            (None, Some((f, expr))) => Next::Done(Outcome {
                rate: None,
                lower: None,
                upper: Some(*f),
                bounded_by: expr.clone(),
                found: false,
            }),
            (Some(p), None) if p >= self.max_rate => Next::Done(self.lower_bound("max_rate")),
            (Some(p), None) => Next::Step((p * self.growth).min(self.max_rate)),
            (Some(p), Some((f, expr))) if *f <= p || (f - p) / p <= self.precision => {
                Next::Done(Outcome {
                    rate: Some(p),
                    lower: Some(p),
                    upper: Some(*f),
                    bounded_by: expr.clone(),
                    found: true,
                })
            }
            (Some(p), Some((f, _))) => Next::Step((p + f) / 2.0),
            (None, None) => Next::Step(self.max_rate),
        }
    }

    /// The answer when the search must stop now for `why` (out of time, interrupted): the
    /// interval so far.
    pub fn stopped(&self, why: &str) -> Outcome {
        Outcome {
            upper: self.fail.as_ref().map(|f| f.0),
            ..self.lower_bound(why)
        }
    }

    /// The highest rate that passed, as a lower bound.
    fn lower_bound(&self, why: &str) -> Outcome {
        Outcome {
            rate: self.pass,
            lower: self.pass,
            upper: None,
            bounded_by: why.into(),
            found: false,
        }
    }

    /// The interval so far: the highest passing and the lowest failing rate.
    pub fn interval(&self) -> (Option<f64>, Option<f64>) {
        (self.pass, self.fail.as_ref().map(|f| f.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against `verdict_at` until it is done (at most 100 steps).
    fn run(
        start: f64,
        max_rate: f64,
        mut verdict_at: impl FnMut(f64) -> Verdict,
    ) -> (Outcome, Vec<f64>) {
        let (mut s, mut rate) = Search::new(start, 2.0, 0.05, max_rate);
        let mut rates = Vec::new();
        for _ in 0..100 {
            rates.push(rate);
            match s.record(rate, verdict_at(rate)) {
                Next::Step(r) => rate = r,
                Next::Done(o) => return (o, rates),
            }
        }
        panic!("no answer after 100 steps: {rates:?}");
    }

    fn knee(c: f64) -> impl FnMut(f64) -> Verdict {
        move |r| {
            if r <= c {
                Verdict::Pass
            } else {
                Verdict::Fail("p99<100ms".into())
            }
        }
    }

    #[test]
    fn grows_then_bisects_to_the_precision() {
        for c in [83.0, 12.0, 1234.0, 10.5] {
            let (o, rates) = run(10.0, 100_000.0, knee(c));
            let rate = o.rate.expect("found");
            assert!(o.found, "{c}: {o:?}");
            assert!(rate <= c && rate >= c / 1.05, "{c}: {rate} ({rates:?})");
            let upper = o.upper.expect("upper");
            assert!((upper - rate) / rate <= 0.05 && upper > c, "{c}: {o:?}");
            assert_eq!(o.bounded_by, "p99<100ms");
            assert!(rates.len() <= 20, "{c}: {rates:?}");
        }
        let (_, rates) = run(10.0, 100_000.0, knee(83.0));
        assert_eq!(
            &rates[..5],
            [10.0, 20.0, 40.0, 80.0, 160.0],
            "doubling first"
        );
        assert_eq!(rates[5], 120.0, "then halving the interval");
    }

    #[test]
    fn noisy_steps_still_end_inside_the_band() {
        // Near the knee a step fails or passes by chance: a fixed pseudo-random pattern.
        for seed in 0..20u64 {
            let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let noisy = move |r: f64| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let coin = (x % 1000) as f64 / 1000.0;
                // Clear pass under 90, clear fail over 110, a coin in between.
                let p_pass = ((110.0 - r) / 20.0).clamp(0.0, 1.0);
                if coin < p_pass {
                    Verdict::Pass
                } else {
                    Verdict::Fail("p99<100ms".into())
                }
            };
            let (o, rates) = run(10.0, 100_000.0, noisy);
            let rate = o.rate.expect("found");
            assert!((80.0..=110.0).contains(&rate), "{seed}: {rate} {rates:?}");
            assert!(o.found);
        }
    }

    #[test]
    fn a_failing_start_finds_nothing() {
        let (o, rates) = run(50.0, 100_000.0, knee(10.0));
        assert_eq!(rates, [50.0]);
        assert_eq!(
            o,
            Outcome {
                rate: None,
                lower: None,
                upper: Some(50.0),
                bounded_by: "p99<100ms".into(),
                found: false
            }
        );
    }

    #[test]
    fn the_rate_cap_ends_the_search_with_a_lower_bound() {
        let (o, rates) = run(10.0, 100.0, knee(1e9));
        assert_eq!(rates, [10.0, 20.0, 40.0, 80.0, 100.0]);
        assert_eq!(o.rate, Some(100.0));
        assert_eq!(o.bounded_by, "max_rate");
        assert!(!o.found);
        // A start over the cap starts at the cap.
        let (_, rates) = run(500.0, 100.0, knee(1e9));
        assert_eq!(rates, [100.0]);
    }

    #[test]
    fn a_generator_limited_step_ends_with_at_least_the_last_pass() {
        let (o, rates) = run(10.0, 100_000.0, |r| {
            if r >= 80.0 {
                Verdict::GeneratorLimited
            } else {
                Verdict::Pass
            }
        });
        assert_eq!(rates, [10.0, 20.0, 40.0, 80.0]);
        assert_eq!(
            (o.rate, o.lower, o.upper, o.bounded_by.as_str(), o.found),
            (Some(40.0), Some(40.0), None, "generator", false)
        );
        // Limited at the start: nothing known about the service.
        let (o, _) = run(10.0, 100_000.0, |_| Verdict::GeneratorLimited);
        assert_eq!((o.rate, o.bounded_by.as_str()), (None, "generator"));
    }

    #[test]
    fn stopping_early_keeps_the_interval() {
        let (mut s, _) = Search::new(10.0, 2.0, 0.05, 1e5);
        s.record(10.0, Verdict::Pass);
        s.record(20.0, Verdict::Fail("p99<1s".into()));
        let o = s.stopped("max_duration");
        assert_eq!(
            (o.rate, o.lower, o.upper, o.found),
            (Some(10.0), Some(10.0), Some(20.0), false)
        );
        assert_eq!(s.interval(), (Some(10.0), Some(20.0)));
    }
}
