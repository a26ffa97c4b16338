//! Scenario files, traffic descriptions a person writes (TOML: phases with rates, a shape
//! from [`crate::shape`] and faults to switch on at the server), turned into a validated
//! [`Scenario`]. The bundled scenarios live in `loadgen/scenarios/` and are compiled in, so a
//! name is enough.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use order_server::FaultRequest;
use serde::Deserialize;

use crate::schedule::{ArrivalProcess, Phase, Plan, Profile, Shape};
use crate::shape::{check_rate, ShapeSpec};

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
    /// The server's own fault request; `duration` defaults to the phase's length.
    #[serde(rename = "fault", default)]
    faults: Vec<FaultRequest>,
    #[serde(flatten)]
    shape: ShapeSpec,
    /// Catches misspelt keys, which `deny_unknown_fields` cannot do next to a flatten.
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
}

/// A fault to switch on `at` seconds into the run.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedFault {
    pub at: f64,
    pub phase: String,
    pub request: FaultRequest,
}

/// The shortest fault the server's fault API takes.
const MIN_FAULT: Duration = Duration::from_secs(1);

/// The most phases a scenario has: reports and their pages repeat every phase.
pub const MAX_PHASES: usize = 1000;
/// The longest scenario or phase name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

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
    Read(String, #[source] std::io::Error),
    #[error("scenario {0}: {1}")]
    Invalid(String, String),
}

impl Scenario {
    /// The same scenario `speed` times faster: every phase, fault time and fault duration
    /// divided by it (a drill of a ten-minute incident in one minute, say). Rates and shapes
    /// stay as they are.
    pub fn faster(mut self, speed: f64) -> Self {
        // NaN, 1 and anything slower leave it as it is.
        if speed.is_nan() || speed <= 1.0 {
            return self;
        }
        for p in &mut self.plan.phases {
            p.duration = p.duration.map(|d| d / speed);
            p.offset /= speed;
            p.profile.shape = match p.profile.shape.clone() {
                Shape::Ramp { from, over } => Shape::Ramp {
                    from,
                    over: over / speed,
                },
                Shape::Steps { steps, every } => Shape::Steps {
                    steps,
                    every: every / speed,
                },
                Shape::Sine { period, amplitude } => Shape::Sine {
                    period: period / speed,
                    amplitude,
                },
                Shape::Daily {
                    day_length,
                    start_hour,
                } => Shape::Daily {
                    day_length: day_length / speed,
                    start_hour,
                },
                Shape::Constant => Shape::Constant,
            };
            if let Some(f) = &mut p.profile.flash_sales {
                f.every /= speed;
                f.duration /= speed;
            }
        }
        for f in &mut self.faults {
            f.at /= speed;
            if let Ok(d) = humantime::parse_duration(&f.request.duration) {
                // The fault API takes a second at least: a faster drill's fault lasts that.
                let d = Duration::from_secs_f64(d.as_secs_f64() / speed).max(MIN_FAULT);
                f.request.duration = format!("{}ms", d.as_millis());
            }
        }
        self
    }

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
        if n > MAX_PHASES {
            return Err(invalid(format!("{n} phases: at most {MAX_PHASES}")));
        }
        let long = file
            .name
            .iter()
            .chain(file.phases.iter().filter_map(|p| p.name.as_ref()))
            .find(|name| name.len() > MAX_NAME_BYTES);
        if let Some(name) = long {
            return Err(invalid(format!(
                "a name of {} bytes: at most {MAX_NAME_BYTES}",
                name.len()
            )));
        }
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
            let food = check_rate("food_rate", required("food_rate", p.food_rate)?)
                .map_err(|e| ctx(e.to_string()))?;
            let clothing = check_rate("clothing_rate", required("clothing_rate", p.clothing_rate)?)
                .map_err(|e| ctx(e.to_string()))?;
            let (shape, flash_sales) = p
                .shape
                .build(p.duration, seed)
                .map_err(|e| ctx(e.to_string()))?;
            for (k, mut request) in p.faults.into_iter().enumerate() {
                if request.duration.is_empty() {
                    let d = p.duration.ok_or_else(|| {
                        ctx("a fault in an open-ended phase needs its own duration".into())
                    })?;
                    request.duration = humantime::format_duration(d).to_string();
                }
                // The server's own validation, now rather than when the phase starts and the
                // run is already half done.
                request
                    .clone()
                    .validate()
                    .map_err(|e| ctx(format!("fault {}: {e}", k + 1)))?;
                faults.push(TimedFault {
                    at,
                    phase: label.clone(),
                    request,
                });
            }
            if let Some(d) = p.duration {
                at += d.as_secs_f64();
            }
            phases.push(Phase {
                name: label,
                duration: p.duration.map(|d| d.as_secs_f64()),
                offset: 0.0,
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
    use crate::schedule::Shape;

    #[test]
    fn names_and_phases_are_bounded() {
        let phase = "[[phase]]\nduration = \"1s\"\nfood_rate = 1\nclothing_rate = 1\n";
        let long_name = format!("name = \"{}\"\n{phase}", "x".repeat(MAX_NAME_BYTES + 1));
        let long_phase = phase.replace(
            "[[phase]]",
            &format!("[[phase]]\nname = \"{}\"", "y".repeat(300)),
        );
        let many = phase.repeat(MAX_PHASES + 1);
        for (text, says) in [
            (long_name, "a name of 257 bytes"),
            (long_phase, "a name of 300 bytes"),
            (many, "1001 phases"),
        ] {
            let err = Scenario::parse("t.toml", &text, 1)
                .expect_err(says)
                .to_string();
            assert!(err.contains(says), "{err}");
        }
        assert!(Scenario::parse("t.toml", &phase.repeat(MAX_PHASES), 1).is_ok());
    }

    #[test]
    fn a_faster_scenario_keeps_its_shape_and_its_faults_take_a_second_at_least() {
        let slow = Scenario::load("flash-sale", 1).expect("bundled");
        let fast = Scenario::load("flash-sale", 1)
            .expect("bundled")
            .faster(10.0);
        let (len, fast_len) = (
            slow.plan.length().expect("fixed"),
            fast.plan.length().expect("fixed"),
        );
        assert!((len / 10.0 - fast_len).abs() < 1e-9);
        // The same rates at the same fraction of the scenario, sales included.
        for k in 0..200 {
            let at = len * f64::from(k) / 200.0;
            for t in order_server::contract::OrderType::ALL {
                let (a, b) = (slow.plan.rate(at, t), fast.plan.rate(at / 10.0, t));
                assert!((a - b).abs() < 1e-9, "{t:?} at {at}: {a} vs {b}");
            }
        }
        let burst = Scenario::load("error-burst", 1)
            .expect("bundled")
            .faster(1000.0);
        for f in &burst.faults {
            let d = humantime::parse_duration(&f.request.duration).expect("duration");
            assert!(d >= MIN_FAULT, "{d:?}");
        }
    }

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
        assert_eq!(burst.faults[0].request.kind, "errors");
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
        assert_eq!(s.faults[0].request.duration, "1m");
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
}
