//! The shape of a traffic profile as a person gives it, on the command line or in a scenario
//! phase: constant, ramp, steps, sine or a shop's day, with optional flash sales; validated
//! into the rate model's [`Shape`]. Errors name the scenario field and its flag. Also the
//! check every rate passes.

use std::time::Duration;

use serde::Deserialize;

use crate::schedule::{FlashSales, Shape};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ShapeKind {
    Constant,
    Ramp,
    Steps,
    Sine,
    Daily,
}

mod defaults {
    use std::time::Duration;
    pub const STEPS: u32 = 4;
    pub const AMPLITUDE: f64 = 0.5;
    pub const START_HOUR: f64 = 6.0;
    pub const FLASH_FACTOR: f64 = 4.0;
    pub fn shape() -> super::ShapeKind {
        super::ShapeKind::Constant
    }
    pub fn steps() -> u32 {
        STEPS
    }
    pub fn period() -> Duration {
        Duration::from_secs(300)
    }
    pub fn amplitude() -> f64 {
        AMPLITUDE
    }
    pub fn day_length() -> Duration {
        Duration::from_secs(600)
    }
    pub fn start_hour() -> f64 {
        START_HOUR
    }
    pub fn flash_duration() -> Duration {
        Duration::from_secs(30)
    }
    pub fn flash_factor() -> f64 {
        FLASH_FACTOR
    }
}

/// Shape options; the same names on the command line (`--ramp-over`) and in scenario files
/// (`ramp_over`).
#[derive(Debug, Clone, PartialEq, clap::Args, Deserialize)]
pub struct ShapeSpec {
    /// Traffic shape: constant, ramp, steps, sine, or daily (a shop's day).
    #[arg(long, env = "LOADGEN_SHAPE", value_enum, default_value = "constant")]
    #[serde(default = "defaults::shape")]
    pub shape: ShapeKind,

    /// ramp: starting rate as a fraction of the full rate.
    #[arg(long, env = "LOADGEN_RAMP_FROM", default_value_t = 0.0)]
    #[serde(default)]
    pub ramp_from: f64,

    /// ramp: time to reach the full rate (default: the whole run or phase).
    #[arg(long, env = "LOADGEN_RAMP_OVER", value_parser = order_server::config::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub ramp_over: Option<Duration>,

    /// steps: number of equal steps up to the full rate.
    #[arg(long, env = "LOADGEN_STEPS", default_value_t = defaults::STEPS)]
    #[serde(default = "defaults::steps")]
    pub steps: u32,

    /// steps: length of each step (default: the run or phase divided by --steps).
    #[arg(long, env = "LOADGEN_STEP_EVERY", value_parser = order_server::config::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub step_every: Option<Duration>,

    /// sine: period of the wave.
    #[arg(long, env = "LOADGEN_PERIOD", default_value = "5m", value_parser = order_server::config::parse_duration)]
    #[serde(default = "defaults::period", with = "humantime_serde")]
    pub period: Duration,

    /// sine: relative amplitude (0.5 swings from half to one and a half times the rate).
    #[arg(long, env = "LOADGEN_AMPLITUDE", default_value_t = defaults::AMPLITUDE)]
    #[serde(default = "defaults::amplitude")]
    pub amplitude: f64,

    /// daily: how long one compressed day lasts; the rates are each type's peak rate.
    #[arg(long, env = "LOADGEN_DAY_LENGTH", default_value = "10m", value_parser = order_server::config::parse_duration)]
    #[serde(default = "defaults::day_length", with = "humantime_serde")]
    pub day_length: Duration,

    /// daily: hour of day at which the run starts (0-24).
    #[arg(long, env = "LOADGEN_START_HOUR", default_value_t = defaults::START_HOUR)]
    #[serde(default = "defaults::start_hour")]
    pub start_hour: f64,

    /// Flash sales: one slot of this length in two has a sale (off unless set).
    #[arg(long, env = "LOADGEN_FLASH_SALE_EVERY", value_parser = order_server::config::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub flash_sale_every: Option<Duration>,

    /// Flash sales: how long a sale lasts.
    #[arg(long, env = "LOADGEN_FLASH_SALE_DURATION", default_value = "30s", value_parser = order_server::config::parse_duration)]
    #[serde(default = "defaults::flash_duration", with = "humantime_serde")]
    pub flash_sale_duration: Duration,

    /// Flash sales: clothing rate multiplier during a sale (food gets a quarter of the extra).
    #[arg(long, env = "LOADGEN_FLASH_SALE_FACTOR", default_value_t = defaults::FLASH_FACTOR)]
    #[serde(default = "defaults::flash_factor")]
    pub flash_sale_factor: f64,
}

impl Default for ShapeSpec {
    fn default() -> Self {
        ShapeSpec {
            shape: defaults::shape(),
            ramp_from: 0.0,
            ramp_over: None,
            steps: defaults::STEPS,
            step_every: None,
            period: defaults::period(),
            amplitude: defaults::AMPLITUDE,
            day_length: defaults::day_length(),
            start_hour: defaults::START_HOUR,
            flash_sale_every: None,
            flash_sale_duration: defaults::flash_duration(),
            flash_sale_factor: defaults::FLASH_FACTOR,
        }
    }
}

impl ShapeSpec {
    /// Validates the options into a shape; `span` is the phase or run length, if known.
    pub fn build(
        &self,
        span: Option<Duration>,
        seed: u64,
    ) -> Result<(Shape, Option<FlashSales>), ShapeError> {
        let secs = |d: Duration| d.as_secs_f64();
        let shape = match self.shape {
            ShapeKind::Constant => Shape::Constant,
            ShapeKind::Ramp => {
                if !(0.0..=1.0).contains(&self.ramp_from) {
                    return Err(ShapeError::range(
                        "ramp_from",
                        "between 0 and 1",
                        self.ramp_from,
                    ));
                }
                let over = self
                    .ramp_over
                    .or(span)
                    .ok_or(ShapeError::Required { field: "ramp_over" })?;
                if over.is_zero() {
                    return Err(ShapeError::Bound {
                        field: "ramp_over",
                        bound: "longer than 0",
                    });
                }
                Shape::Ramp {
                    from: self.ramp_from,
                    over: secs(over),
                }
            }
            ShapeKind::Steps => {
                if self.steps == 0 || self.steps > 1000 {
                    return Err(ShapeError::range("steps", "from 1 to 1000", self.steps));
                }
                let every = match (self.step_every, span) {
                    (Some(e), _) => e,
                    (None, Some(s)) => s / self.steps,
                    (None, None) => {
                        return Err(ShapeError::Required {
                            field: "step_every",
                        })
                    }
                };
                if every.is_zero() {
                    return Err(ShapeError::Bound {
                        field: "step_every",
                        bound: "longer than 0",
                    });
                }
                Shape::Steps {
                    steps: self.steps,
                    every: secs(every),
                }
            }
            ShapeKind::Sine => {
                if !(0.0..=1.0).contains(&self.amplitude) {
                    return Err(ShapeError::range(
                        "amplitude",
                        "between 0 and 1",
                        self.amplitude,
                    ));
                }
                if self.period < Duration::from_secs(1) {
                    return Err(ShapeError::Bound {
                        field: "period",
                        bound: "at least 1s",
                    });
                }
                Shape::Sine {
                    period: secs(self.period),
                    amplitude: self.amplitude,
                }
            }
            ShapeKind::Daily => {
                if self.day_length < Duration::from_secs(10) {
                    return Err(ShapeError::Bound {
                        field: "day_length",
                        bound: "at least 10s",
                    });
                }
                if !(0.0..24.0).contains(&self.start_hour) {
                    return Err(ShapeError::range(
                        "start_hour",
                        "from 0 to 24",
                        self.start_hour,
                    ));
                }
                Shape::Daily {
                    day_length: secs(self.day_length),
                    start_hour: self.start_hour,
                }
            }
        };
        let flash = match self.flash_sale_every {
            None => None,
            Some(every) => {
                if self.flash_sale_duration.is_zero() || self.flash_sale_duration > every {
                    return Err(ShapeError::Bound {
                        field: "flash_sale_duration",
                        bound: "longer than 0 and at most flash_sale_every",
                    });
                }
                if !(1.0..=100.0).contains(&self.flash_sale_factor) {
                    return Err(ShapeError::range(
                        "flash_sale_factor",
                        "from 1 to 100",
                        self.flash_sale_factor,
                    ));
                }
                Some(FlashSales {
                    every: secs(every),
                    duration: secs(self.flash_sale_duration),
                    factor: self.flash_sale_factor,
                    seed,
                })
            }
        };
        Ok((shape, flash))
    }
}

/// A shape option out of its range; the message names the scenario field and its flag.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ShapeError {
    #[error("{field} ({}) must be {expected}, got {got}", flag(field))]
    Range {
        field: &'static str,
        expected: &'static str,
        got: String,
    },
    #[error("{field} ({}) is required when the run has no --duration", flag(field))]
    Required { field: &'static str },
    #[error("{field} ({}) must be {bound}", flag(field))]
    Bound {
        field: &'static str,
        bound: &'static str,
    },
}

impl ShapeError {
    fn range(field: &'static str, expected: &'static str, got: impl std::fmt::Display) -> Self {
        ShapeError::Range {
            field,
            expected,
            got: got.to_string(),
        }
    }
}

/// The command-line flag of a scenario field: `ramp_from` is `--ramp-from`.
fn flag(field: &str) -> String {
    format!("--{}", field.replace('_', "-"))
}

/// A rate flag or field out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{name} must be a number of requests/s from 0 to 1000000, got {rate}")]
pub struct RateError {
    pub name: String,
    pub rate: f64,
}

/// Checks a rate flag or field.
pub fn check_rate(name: &str, rate: f64) -> Result<f64, RateError> {
    if rate.is_finite() && (0.0..=1_000_000.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(RateError {
            name: name.into(),
            rate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_shape_options_validate() {
        let spec = ShapeSpec {
            shape: ShapeKind::Ramp,
            ..ShapeSpec::default()
        };
        let e = spec.build(None, 1).expect_err("no span");
        assert_eq!(e, ShapeError::Required { field: "ramp_over" });
        assert!(e.to_string().contains("--ramp-over"), "{e}");
        assert!(
            matches!(spec.build(Some(Duration::from_secs(10)), 1), Ok((Shape::Ramp { over, .. }, None)) if over == 10.0)
        );
        let spec = ShapeSpec {
            flash_sale_every: Some(Duration::from_secs(10)),
            flash_sale_duration: Duration::from_secs(20),
            ..ShapeSpec::default()
        };
        assert!(spec
            .build(None, 1)
            .expect_err("too long")
            .to_string()
            .contains("--flash-sale-duration"));
        assert!(check_rate("--food-rate", f64::NAN).is_err());
    }
}
