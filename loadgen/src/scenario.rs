//! Traffic descriptions a person writes: the shape options shared by the command line and
//! scenario files ([`ShapeSpec`]), and scenario files (TOML: phases with rates, a shape and
//! faults to switch on at the server) turned into a validated [`Scenario`]. The bundled
//! scenarios live in `loadgen/scenarios/` and are compiled in, so a name is enough.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::schedule::{ArrivalProcess, FlashSales, Phase, Plan, Profile, Shape};

/// Scenarios shipped with the load generator: (name, file text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("steady", include_str!("../scenarios/steady.toml")),
    ("daily", include_str!("../scenarios/daily.toml")),
    ("flash-sale", include_str!("../scenarios/flash-sale.toml")),
    ("error-burst", include_str!("../scenarios/error-burst.toml")),
    (
        "latency-spike",
        include_str!("../scenarios/latency-spike.toml"),
    ),
    ("outage", include_str!("../scenarios/outage.toml")),
];

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
    #[arg(long, default_value_t = 0.0)]
    #[serde(default)]
    pub ramp_from: f64,

    /// ramp: time to reach the full rate (default: the whole run or phase).
    #[arg(long, value_parser = order_server::config::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub ramp_over: Option<Duration>,

    /// steps: number of equal steps up to the full rate.
    #[arg(long, default_value_t = defaults::STEPS)]
    #[serde(default = "defaults::steps")]
    pub steps: u32,

    /// steps: length of each step (default: the run or phase divided by --steps).
    #[arg(long, value_parser = order_server::config::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub step_every: Option<Duration>,

    /// sine: period of the wave.
    #[arg(long, default_value = "5m", value_parser = order_server::config::parse_duration)]
    #[serde(default = "defaults::period", with = "humantime_serde")]
    pub period: Duration,

    /// sine: relative amplitude (0.5 swings from half to one and a half times the rate).
    #[arg(long, default_value_t = defaults::AMPLITUDE)]
    #[serde(default = "defaults::amplitude")]
    pub amplitude: f64,

    /// daily: how long one compressed day lasts; the rates are each type's peak rate.
    #[arg(long, env = "LOADGEN_DAY_LENGTH", default_value = "10m", value_parser = order_server::config::parse_duration)]
    #[serde(default = "defaults::day_length", with = "humantime_serde")]
    pub day_length: Duration,

    /// daily: hour of day at which the run starts (0-24).
    #[arg(long, default_value_t = defaults::START_HOUR)]
    #[serde(default = "defaults::start_hour")]
    pub start_hour: f64,

    /// Flash sales: one slot of this length in two has a sale (off unless set).
    #[arg(long, env = "LOADGEN_FLASH_SALE_EVERY", value_parser = order_server::config::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub flash_sale_every: Option<Duration>,

    /// Flash sales: how long a sale lasts.
    #[arg(long, default_value = "30s", value_parser = order_server::config::parse_duration)]
    #[serde(default = "defaults::flash_duration", with = "humantime_serde")]
    pub flash_sale_duration: Duration,

    /// Flash sales: clothing rate multiplier during a sale (food gets a quarter of the extra).
    #[arg(long, default_value_t = defaults::FLASH_FACTOR)]
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
    ) -> Result<(Shape, Option<FlashSales>), String> {
        let secs = |d: Duration| d.as_secs_f64();
        let shape =
            match self.shape {
                ShapeKind::Constant => Shape::Constant,
                ShapeKind::Ramp => {
                    if !(0.0..=1.0).contains(&self.ramp_from) {
                        return Err(format!(
                            "ramp_from (--ramp-from) must be between 0 and 1, got {}",
                            self.ramp_from
                        ));
                    }
                    let over = self.ramp_over.or(span).ok_or(
                        "ramp_over (--ramp-over) is required when the run has no --duration",
                    )?;
                    if over.is_zero() {
                        return Err("ramp_over (--ramp-over) must be longer than 0".into());
                    }
                    Shape::Ramp {
                        from: self.ramp_from,
                        over: secs(over),
                    }
                }
                ShapeKind::Steps => {
                    if self.steps == 0 || self.steps > 1000 {
                        return Err(format!(
                            "steps (--steps) must be from 1 to 1000, got {}",
                            self.steps
                        ));
                    }
                    let every = match (self.step_every, span) {
                        (Some(e), _) => e,
                        (None, Some(s)) => s / self.steps,
                        (None, None) => return Err(
                            "step_every (--step-every) is required when the run has no --duration"
                                .into(),
                        ),
                    };
                    if every.is_zero() {
                        return Err("step_every (--step-every) must be longer than 0".into());
                    }
                    Shape::Steps {
                        steps: self.steps,
                        every: secs(every),
                    }
                }
                ShapeKind::Sine => {
                    if !(0.0..=1.0).contains(&self.amplitude) {
                        return Err(format!(
                            "amplitude (--amplitude) must be between 0 and 1, got {}",
                            self.amplitude
                        ));
                    }
                    if self.period < Duration::from_secs(1) {
                        return Err("period (--period) must be at least 1s".into());
                    }
                    Shape::Sine {
                        period: secs(self.period),
                        amplitude: self.amplitude,
                    }
                }
                ShapeKind::Daily => {
                    if self.day_length < Duration::from_secs(10) {
                        return Err("day_length (--day-length) must be at least 10s".into());
                    }
                    if !(0.0..24.0).contains(&self.start_hour) {
                        return Err(format!(
                            "start_hour (--start-hour) must be from 0 to 24, got {}",
                            self.start_hour
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
                    return Err("flash_sale_duration (--flash-sale-duration) must be longer than 0 and at most flash_sale_every".into());
                }
                if !(1.0..=100.0).contains(&self.flash_sale_factor) {
                    return Err(format!(
                        "flash_sale_factor (--flash-sale-factor) must be from 1 to 100, got {}",
                        self.flash_sale_factor
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

/// Checks a rate flag or field.
pub fn check_rate(name: &str, rate: f64) -> Result<f64, String> {
    if rate.is_finite() && (0.0..=1_000_000.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!(
            "{name} must be a number of requests/s from 0 to 1000000, got {rate}"
        ))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    name: Option<String>,
    description: Option<String>,
    arrivals: Option<ArrivalProcess>,
    #[serde(rename = "phase", default)]
    phases: Vec<PhaseSpec>,
}

#[derive(Debug, Deserialize)]
struct PhaseSpec {
    name: Option<String>,
    #[serde(default, with = "humantime_serde")]
    duration: Option<Duration>,
    // Optional here so that a misspelt key ("food_rat") is reported as unknown before the
    // real one is reported missing.
    food_rate: Option<f64>,
    clothing_rate: Option<f64>,
    #[serde(rename = "fault", default)]
    faults: Vec<FaultSpec>,
    #[serde(flatten)]
    shape: ShapeSpec,
    /// Catches misspelt keys, which `deny_unknown_fields` cannot do next to a flatten.
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_latency: Option<String>,
    /// Defaults to the phase's duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

/// A fault to switch on `at` seconds into the run.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedFault {
    pub at: f64,
    pub phase: String,
    pub body: serde_json::Value,
}

/// A validated scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub arrivals: Option<ArrivalProcess>,
    pub plan: Plan,
    pub faults: Vec<TimedFault>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("--scenario {0:?}: no such file, and not a bundled scenario (bundled: {1})")]
    Unknown(String, String),
    #[error("--scenario {0:?} is {1}: give a TOML file or a bundled scenario name")]
    NotAFile(String, &'static str),
    #[error("scenario {0}: cannot read: {1}")]
    Read(String, std::io::Error),
    #[error("scenario {0}: {1}")]
    Invalid(String, String),
}

impl Scenario {
    /// A bundled name or a path to a TOML file.
    pub fn load(name_or_path: &str, seed: u64) -> Result<Self, ScenarioError> {
        let path = Path::new(name_or_path);
        // Never open what is not a regular file: a FIFO would block the start for good.
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.is_dir() {
                return Err(ScenarioError::NotAFile(name_or_path.into(), "a directory"));
            }
            if !meta.is_file() {
                return Err(ScenarioError::NotAFile(
                    name_or_path.into(),
                    "not a regular file (a FIFO, socket or device)",
                ));
            }
        }
        if path.is_file() {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ScenarioError::Read(name_or_path.into(), e))?;
            return Scenario::parse(name_or_path, &text, seed);
        }
        match BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            Some((n, text)) => Scenario::parse(n, text, seed),
            None => Err(ScenarioError::Unknown(
                name_or_path.into(),
                BUILTIN
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        }
    }

    pub fn parse(origin: &str, text: &str, seed: u64) -> Result<Self, ScenarioError> {
        let invalid = |m: String| ScenarioError::Invalid(origin.into(), m);
        let file: ScenarioFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if file.phases.is_empty() {
            return Err(invalid(
                "no [[phase]] tables: a scenario needs at least one phase".into(),
            ));
        }
        let n = file.phases.len();
        let mut phases = Vec::with_capacity(n);
        let mut faults = Vec::new();
        let mut at = 0.0;
        for (i, p) in file.phases.into_iter().enumerate() {
            let label = p.name.clone().unwrap_or_else(|| format!("phase {}", i + 1));
            let ctx = |m: String| invalid(format!("{label}: {m}"));
            if let Some(k) = p.unknown.keys().next() {
                return Err(ctx(format!("unknown key {k:?}")));
            }
            match p.duration {
                Some(d) if d.is_zero() => return Err(ctx("duration must be longer than 0".into())),
                None if i + 1 < n => {
                    return Err(ctx(
                        "duration is required (only the last phase may run until the run stops)"
                            .into(),
                    ))
                }
                _ => {}
            }
            let required = |name: &str, v: Option<f64>| {
                v.ok_or_else(|| ctx(format!("{name} is required (requests/s, 0 for none)")))
            };
            let food =
                check_rate("food_rate", required("food_rate", p.food_rate)?).map_err(&ctx)?;
            let clothing = check_rate("clothing_rate", required("clothing_rate", p.clothing_rate)?)
                .map_err(&ctx)?;
            let (shape, flash_sales) = p.shape.build(p.duration, seed).map_err(&ctx)?;
            for (k, f) in p.faults.into_iter().enumerate() {
                let mut f = f;
                if f.duration.is_none() {
                    let d = p.duration.ok_or_else(|| {
                        ctx("a fault in an open-ended phase needs its own duration".into())
                    })?;
                    f.duration = Some(humantime::format_duration(d).to_string());
                }
                let body = serde_json::to_value(&f).map_err(|e| ctx(e.to_string()))?;
                // The server's own validation, now rather than when the phase starts and the
                // run is already half done.
                serde_json::from_value::<order_server::faults::FaultRequest>(body.clone())
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.validate().map_err(|e| e.to_string()))
                    .map_err(|e| ctx(format!("fault {}: {e}", k + 1)))?;
                faults.push(TimedFault {
                    at,
                    phase: label.clone(),
                    body,
                });
            }
            if let Some(d) = p.duration {
                at += d.as_secs_f64();
            }
            phases.push(Phase {
                name: label,
                duration: p.duration.map(|d| d.as_secs_f64()),
                profile: Profile {
                    shape,
                    rates: [food, clothing],
                    flash_sales,
                },
            });
        }
        Ok(Scenario {
            name: file.name.unwrap_or_else(|| origin.to_string()),
            description: file.description.unwrap_or_default(),
            arrivals: file.arrivals,
            plan: Plan {
                phases,
                shard: (0, 1),
            },
            faults,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_scenario_parses() {
        for (name, _) in BUILTIN {
            let s = Scenario::load(name, 1).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!s.description.is_empty(), "{name} has a description");
        }
        let burst = Scenario::load("error-burst", 1).expect("bundled");
        assert_eq!(burst.faults.len(), 1);
        assert!(
            burst.faults[0].at > 0.0,
            "the burst comes after a healthy baseline"
        );
        assert_eq!(burst.faults[0].body["kind"], "errors");
        assert!(burst.plan.length().is_some());
    }

    #[test]
    fn phases_faults_and_shapes() {
        let text = r#"
            name = "t"
            description = "test"
            arrivals = "uniform"
            [[phase]]
            duration = "30s"
            food_rate = 10
            clothing_rate = 5
            [[phase]]
            name = "spike"
            duration = "1m"
            food_rate = 10
            clothing_rate = 5
            shape = "sine"
            period = "20s"
            [[phase.fault]]
            kind = "latency"
            extra_latency = "300ms"
        "#;
        let s = Scenario::parse("t.toml", text, 1).expect("valid");
        assert_eq!(s.arrivals, Some(ArrivalProcess::Uniform));
        assert_eq!(s.plan.length(), Some(90.0));
        assert_eq!(s.faults.len(), 1);
        assert_eq!(s.faults[0].at, 30.0);
        assert_eq!(s.faults[0].body["duration"], "1m");
        assert!(
            matches!(s.plan.phases[1].profile.shape, Shape::Sine { period, .. } if period == 20.0)
        );
    }

    #[test]
    fn bad_scenarios_name_the_problem() {
        let cases = [
            ("", "at least one phase"),
            ("[[phase]]\nfood_rate = 1\nclothing_rate = 1\nduraton = \"1s\"", "unknown key \"duraton\""),
            ("[[phase]]\nfood_rate = -1\nclothing_rate = 1", "food_rate"),
            ("[[phase]]\nclothing_rate = 1", "food_rate"),
            ("[[phase]]\nfood_rate = 1\nclothing_rate = 1\n[[phase]]\nfood_rate = 1\nclothing_rate = 1", "duration is required"),
            ("[[phase]]\nfood_rate = 1\nclothing_rate = 1\nshape = \"zigzag\"", "zigzag"),
            ("[[phase]]\nfood_rate = 1\nclothing_rate = 1\nshape = \"sine\"\namplitude = 3", "amplitude"),
            ("[[phase]]\nfood_rate = 1\nclothing_rate = 1\nduration = \"soon\"", "duration"),
            ("[[phase]]\nfood_rate = 1\nclothing_rate = 1\n[[phase.fault]]\nkind = \"errors\"", "own duration"),
            ("colour = 1\n[[phase]]\nfood_rate = 1\nclothing_rate = 1", "colour"),
            ("[[phase]\n", "expected"),
        ];
        for (text, needle) in cases {
            let e = Scenario::parse("x.toml", text, 1)
                .expect_err(text)
                .to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
            assert!(e.starts_with("scenario x.toml"), "{e}");
        }
        let e = Scenario::load("no-such-scenario", 1)
            .expect_err("unknown")
            .to_string();
        assert!(e.contains("steady") && e.contains("error-burst"), "{e}");
    }

    #[test]
    fn cli_shape_options_validate() {
        let spec = ShapeSpec {
            shape: ShapeKind::Ramp,
            ..ShapeSpec::default()
        };
        let e = spec.build(None, 1).expect_err("no span");
        assert!(e.contains("--ramp-over"), "{e}");
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
            .contains("--flash-sale-duration"));
        assert!(check_rate("--food-rate", f64::NAN).is_err());
    }
}
