//! Pass/fail thresholds as k6 users write them: `p99<250ms`, `food.p99.9<1s`,
//! `clothing.error_ratio<0.01`, `achieved_ratio>0.99`. A threshold names an optional order type
//! (the total without one), a metric (a corrected-latency percentile, the error ratio, or
//! completed over scheduled requests), a comparison and a limit; parse errors name the part at
//! fault. The `--max-p99` and `--max-error-ratio` shorthands are judged as the expressions
//! they stand for, and whatever the metric, nothing to judge is a miss.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use order_server::contract::OrderType;

use crate::recorder::Counts;
use crate::redact::{capped, quoted};

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// Corrected latency at this quantile (0.99 for `p99`), in milliseconds.
    Percentile(f64),
    /// Failed over completed requests.
    ErrorRatio,
    /// Completed over scheduled requests: whether the generator kept up with its schedule
    /// (not over the asked rate, which the Poisson draw decides).
    AchievedRatio,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }

    pub fn holds(self, actual: f64, limit: f64) -> bool {
        match self {
            Op::Lt => actual < limit,
            Op::Le => actual <= limit,
            Op::Gt => actual > limit,
            Op::Ge => actual >= limit,
        }
    }
}

/// One `--threshold`.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// As written, the name it reports under.
    pub text: String,
    /// `None`: both order types together.
    pub scope: Option<OrderType>,
    pub metric: Metric,
    pub op: Op,
    /// Milliseconds for a percentile, a plain number otherwise.
    pub limit: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("--threshold {}: {why}", quoted(.text))]
pub struct ThresholdError {
    pub text: String,
    pub why: String,
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Threshold {
    type Err = ThresholdError;

    fn from_str(text: &str) -> Result<Self, ThresholdError> {
        let err = |why: String| ThresholdError {
            text: text.into(),
            why,
        };
        let text = text.trim();
        let at = text
            .find(['<', '>'])
            .ok_or_else(|| err("no comparison: use <, <=, > or >=, e.g. p99<250ms".into()))?;
        let (left, rest) = text.split_at(at);
        let (op, right) = match rest.strip_prefix("<=") {
            Some(r) => (Op::Le, r),
            None => match rest.strip_prefix(">=") {
                Some(r) => (Op::Ge, r),
                None => match rest.strip_prefix('<') {
                    Some(r) => (Op::Lt, r),
                    None => (Op::Gt, &rest[1..]),
                },
            },
        };
        // Spaces around the comparison only: "p9 9" is not p99.
        let (left, right) = (left.trim(), right.trim());
        for part in [left, right] {
            if part.contains(char::is_whitespace) || part.contains(['<', '>', '=']) {
                return Err(err(format!(
                    "{}: one metric, one comparison, one limit",
                    quoted(part)
                )));
            }
        }
        let (scope, metric_text) = match left.split_once('.') {
            Some(("food", m)) => (Some(OrderType::Food), m),
            Some(("clothing", m)) => (Some(OrderType::Clothing), m),
            // `p99.9` has a dot too: only a known type before it is a scope.
            _ if left.starts_with('p') => (None, left),
            Some((other, _)) => {
                return Err(err(format!(
                    "{} is not an order type (food or clothing)",
                    quoted(other)
                )))
            }
            None => (None, left),
        };
        let metric = match metric_text {
            "error_ratio" => Metric::ErrorRatio,
            "achieved_ratio" => Metric::AchievedRatio,
            p if p.starts_with('p') => {
                Metric::Percentile(percentile(&p[1..]).ok_or_else(|| {
                    err(format!(
                        "{} is not a percentile: p50, p99, p99.9 (from p0 to p100)",
                        quoted(p)
                    ))
                })?)
            }
            "" => return Err(err("no metric before the comparison".into())),
            other => {
                return Err(err(format!(
                    "unknown metric {}: pNN (corrected latency), error_ratio or achieved_ratio",
                    quoted(other)
                )))
            }
        };
        let limit = match metric {
            Metric::Percentile(_) => {
                let d = order_server::config::parse_duration(right).map_err(|e| {
                    err(format!(
                        "limit {}: a latency limit is a duration such as 250ms ({})",
                        quoted(right),
                        capped(&e)
                    ))
                })?;
                d.as_secs_f64() * 1000.0
            }
            Metric::ErrorRatio => ratio(right).filter(|v| *v <= 1.0).ok_or_else(|| {
                err(format!(
                    "limit {}: an error ratio is from 0 to 1",
                    quoted(right)
                ))
            })?,
            Metric::AchievedRatio => ratio(right).ok_or_else(|| {
                err(format!(
                    "limit {}: a ratio is a number such as 0.99",
                    quoted(right)
                ))
            })?,
        };
        let compact = format!("{left}{}{right}", op.as_str());
        Ok(Threshold {
            text: compact,
            scope,
            metric,
            op,
            limit,
        })
    }
}

/// Limits that decide the exit code: `--threshold` expressions, and the two shorthands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thresholds {
    pub max_error_ratio: Option<f64>,
    pub max_p99: Option<Duration>,
    pub exprs: Vec<Threshold>,
}

impl Thresholds {
    /// `--max-error-ratio R` and `--max-p99 D` as the expressions they stand for,
    /// `error_ratio<=R` and `p99<=Dms`, judged and named like any `--threshold`.
    pub fn shorthands(&self) -> Vec<Threshold> {
        let ratio = self.max_error_ratio.map(|r| Threshold {
            text: format!("error_ratio<={r}"),
            scope: None,
            metric: Metric::ErrorRatio,
            op: Op::Le,
            limit: r,
        });
        let p99 = self.max_p99.map(|d| {
            let ms = d.as_secs_f64() * 1000.0;
            Threshold {
                text: format!("p99<={ms}ms"),
                scope: None,
                metric: Metric::Percentile(0.99),
                op: Op::Le,
                limit: ms,
            }
        });
        ratio.into_iter().chain(p99).collect()
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    /// The expression: a `--threshold` as written, or a shorthand's (`p99<=250ms`).
    pub name: String,
    /// How `actual` must compare with `limit`: <, <=, > or >=.
    pub op: &'static str,
    /// Milliseconds for latency, a plain ratio otherwise.
    pub limit: f64,
    pub actual: f64,
    pub passed: bool,
}

impl Thresholds {
    /// Every threshold's verdict, shorthands first; `scoped` gives the counts and the
    /// corrected-latency histogram of an order type (`None`: the total). The report judges
    /// the whole run this way, the terminal view the run so far.
    pub fn judge<'a>(
        &self,
        scoped: impl Fn(Option<OrderType>) -> (Counts, &'a Histogram<u64>),
    ) -> Vec<Check> {
        let mut checks = Vec::new();
        for t in self.shorthands().iter().chain(&self.exprs) {
            let (counts, hist) = scoped(t.scope);
            let (completed, scheduled) = (counts.completed(), counts.scheduled);
            let failed = completed - counts.ok();
            // Nothing to judge (no samples, nothing completed, nothing scheduled) is a miss,
            // not a pass, whatever the metric: NaN holds no comparison.
            let actual = match t.metric {
                Metric::Percentile(_) if hist.is_empty() => f64::NAN,
                Metric::Percentile(q) => hist.value_at_quantile(q) as f64 / 1000.0,
                Metric::ErrorRatio if completed > 0 => failed as f64 / completed as f64,
                // Completed over scheduled: did the generator send, and get an answer for,
                // every request its schedule drew? Not over the asked rate, which Poisson
                // arrivals miss or overshoot by chance.
                Metric::AchievedRatio if scheduled > 0 => completed as f64 / scheduled as f64,
                Metric::ErrorRatio | Metric::AchievedRatio => f64::NAN,
            };
            checks.push(Check {
                name: t.text.clone(),
                op: t.op.as_str(),
                limit: t.limit,
                actual,
                passed: t.op.holds(actual, t.limit),
            });
        }
        checks
    }
}

/// `99.9` as the quantile 0.999, read as a decimal (99.9 / 100 in floating point is
/// 0.9990000000000001, which would pick the sample after the 99.9th percentile). Digits with
/// an optional fraction, from 0 to 100.
fn percentile(digits: &str) -> Option<f64> {
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let is_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if int.is_empty() || int.len() > 3 || !is_digits(int) || !is_digits(frac) {
        return None;
    }
    if digits.ends_with('.') {
        return None;
    }
    let q: f64 = format!("{int}.{frac}e-2").replace(".e", "e").parse().ok()?;
    (0.0..=1.0).contains(&q).then_some(q)
}

/// A non-negative finite number.
fn ratio(text: &str) -> Option<f64> {
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_k6_style_expressions() {
        let t: Threshold = "p99<250ms".parse().expect("valid");
        assert_eq!(
            (t.scope, t.metric, t.op, t.limit),
            (None, Metric::Percentile(0.99), Op::Lt, 250.0)
        );
        let t: Threshold = "food.p99.9 < 1s".parse().expect("valid");
        assert_eq!(t.text, "food.p99.9<1s");
        assert_eq!(t.scope, Some(OrderType::Food));
        // Exactly the quantile the report's p99.9 uses.
        assert_eq!(t.metric, Metric::Percentile(0.999));
        let t: Threshold = "p50<1s".parse().expect("valid");
        assert_eq!(t.metric, Metric::Percentile(0.5));
        assert_eq!(t.limit, 1000.0);
        let t: Threshold = "clothing.error_ratio<=0.01".parse().expect("valid");
        assert_eq!(
            (t.scope, t.metric, t.op, t.limit),
            (Some(OrderType::Clothing), Metric::ErrorRatio, Op::Le, 0.01)
        );
        let t: Threshold = "achieved_ratio>0.99".parse().expect("valid");
        assert_eq!(
            (t.metric, t.op, t.limit),
            (Metric::AchievedRatio, Op::Gt, 0.99)
        );
        let t: Threshold = "p50>=1ms".parse().expect("valid");
        assert_eq!((t.op, t.limit), (Op::Ge, 1.0));
    }

    #[test]
    fn errors_name_the_bad_part() {
        for (text, part) in [
            ("p99", "no comparison"),
            ("<250ms", "no metric"),
            ("p99<250", "250"),
            ("pxx<1s", "\"pxx\""),
            ("p101<1s", "p0 to p100"),
            ("shoes.p99<1s", "\"shoes\""),
            ("latency<1s", "\"latency\""),
            ("error_ratio<lots", "\"lots\""),
            ("error_ratio<-1", "\"-1\""),
            ("error_ratio<5", "from 0 to 1"),
            ("p9 9<1s", "one metric"),
            ("p99<1 0s", "one metric"),
            ("p99<1s<2s", "one metric"),
            ("p99<=", "limit"),
            ("p+5<1s", "\"p+5\""),
            ("p1e1<1s", "\"p1e1\""),
            ("p.5<1s", "\"p.5\""),
            ("p99.<1s", "\"p99.\""),
            ("p-5<1s", "\"p-5\""),
            ("food.<1s", "no metric"),
            ("achieved_ratio>NaN", "\"NaN\""),
            ("error_ratio<1e400", "\"1e400\""),
        ] {
            let e = text.parse::<Threshold>().expect_err(text).to_string();
            assert!(e.starts_with("--threshold"), "{text}: {e}");
            assert!(e.contains(part), "{text}: {e}");
        }
    }

    #[test]
    fn comparisons() {
        assert!(Op::Lt.holds(1.0, 2.0) && !Op::Lt.holds(2.0, 2.0));
        assert!(Op::Le.holds(2.0, 2.0) && !Op::Le.holds(2.1, 2.0));
        assert!(Op::Gt.holds(3.0, 2.0) && !Op::Gt.holds(2.0, 2.0));
        assert!(Op::Ge.holds(2.0, 2.0) && !Op::Ge.holds(1.9, 2.0));
    }
}
