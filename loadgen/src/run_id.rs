//! Which run a report belongs to, so `loadgen merge` refuses shards of different runs instead
//! of adding them up into a run that never happened. A report carries its run's identity:
//! `--run-id` (`LOADGEN_RUN_ID`), which every shard of one run shares (a Kubernetes Indexed
//! Job passes its own uid), the seed, and a fingerprint of the plan before the split. Shards
//! merge only when all three agree; without a run id, they must also have started within
//! [`START_TOLERANCE`] of each other.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::redact::quoted;

/// Shards without a run id must have started this close together to count as one run.
pub const START_TOLERANCE: Duration = Duration::from_secs(5);
/// The longest run id: a Kubernetes uid is 36 bytes.
const MAX_ID_BYTES: usize = 128;

/// `--run-id`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunIdArgs {
    /// This run's id, the same for every shard of it (e.g. a Kubernetes Job's uid);
    /// `loadgen merge` refuses shards whose ids differ. Without one, shards must share the
    /// seed and plan and start within 5 s of each other.
    #[arg(long = "run-id", env = "LOADGEN_RUN_ID", value_name = "ID")]
    pub run_id: Option<String>,
}

impl RunIdArgs {
    /// The id, checked: 1 to 128 printable ASCII characters without spaces.
    pub fn validated(self) -> Result<Option<String>, String> {
        let Some(id) = self.run_id else {
            return Ok(None);
        };
        if id.is_empty() || id.len() > MAX_ID_BYTES || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "--run-id {}: 1 to {MAX_ID_BYTES} printable ASCII characters, no spaces",
                quoted(&id)
            ));
        }
        Ok(Some(id))
    }
}

/// What a report says about the run it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunIdentity {
    /// `--run-id`, or null.
    pub id: Option<String>,
    pub seed: u64,
    /// A fingerprint (FNV-1a, hex) of the whole plan before the split (phases, shapes, rates),
    /// the arrival process and the scenario: equal for every shard of one run.
    pub plan: String,
}

impl RunIdentity {
    pub fn of(cfg: &RunConfig) -> Self {
        let mut whole = cfg.plan.clone();
        whole.shard = (0, 1);
        // Not the duration or request limit: a shard stopped early is still of the run.
        let described = format!("{whole:?} {:?} {:?}", cfg.arrivals, cfg.scenario);
        RunIdentity {
            id: cfg.run_id.clone(),
            seed: cfg.seed,
            plan: format!("{:016x}", fnv1a(described.as_bytes())),
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One shard as merge sees it: its file, its identity, when it started.
pub type Shard<'a> = (&'a Path, Option<&'a RunIdentity>, Option<SystemTime>);

/// Whether the shards are of one run; if not, why, naming two files that differ.
pub fn same_run(shards: &[Shard<'_>]) -> Result<(), String> {
    let Some(&(first_path, first, _)) = shards.first() else {
        return Ok(());
    };
    let hint = "give every shard of one run the same --run-id (LOADGEN_RUN_ID)";
    for &(path, run, _) in &shards[1..] {
        let (a, b) = (first_path.display(), path.display());
        let differ = match (first, run) {
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                Some("one says which run it is, the other does not".to_string())
            }
            (Some(x), Some(y)) if x.id != y.id => Some(format!(
                "run ids {} and {}",
                x.id.as_deref().map_or("(none)".into(), quoted),
                y.id.as_deref().map_or("(none)".into(), quoted)
            )),
            (Some(x), Some(y)) if x.seed != y.seed => {
                Some(format!("seeds {} and {}", x.seed, y.seed))
            }
            (Some(x), Some(y)) if x.plan != y.plan => Some("different plans".to_string()),
            _ => None,
        };
        if let Some(why) = differ {
            return Err(format!(
                "{a} and {b} are not shards of one run: {why}; {hint}"
            ));
        }
    }
    // With an id the Job vouches for the shards; without one, they must have started together.
    if first.is_some_and(|r| r.id.is_some()) {
        return Ok(());
    }
    let starts: Vec<(&Path, SystemTime)> = shards
        .iter()
        .filter_map(|&(p, _, t)| t.map(|t| (p, t)))
        .collect();
    let (Some(early), Some(late)) = (
        starts.iter().min_by_key(|(_, t)| *t),
        starts.iter().max_by_key(|(_, t)| *t),
    ) else {
        return Ok(());
    };
    let apart = late.1.duration_since(early.1).unwrap_or_default();
    if apart > START_TOLERANCE {
        return Err(format!(
            "{} and {} are not shards of one run: they started {:.1} s apart (more than {} s, and no run id); {hint}",
            early.0.display(),
            late.0.display(),
            apart.as_secs_f64(),
            START_TOLERANCE.as_secs()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(seed: u64, food: f64, shard: u32) -> RunConfig {
        let mut c = RunConfig::constant(None, food, 5.0);
        c.seed = seed;
        c.plan.shard = (shard, 2);
        c
    }

    #[test]
    fn shards_of_one_run_share_an_identity_and_other_runs_do_not() {
        let (a, b) = (
            RunIdentity::of(&cfg(1, 10.0, 0)),
            RunIdentity::of(&cfg(1, 10.0, 1)),
        );
        assert_eq!(a, b);
        assert_ne!(a.plan, RunIdentity::of(&cfg(1, 11.0, 0)).plan);
        assert_ne!(a, RunIdentity::of(&cfg(2, 10.0, 0)));
        let mut uniform = cfg(1, 10.0, 0);
        uniform.arrivals = crate::schedule::ArrivalProcess::Poisson;
        assert_ne!(a.plan, RunIdentity::of(&uniform).plan);
        // A shard cut short is still of the run.
        let mut shorter = cfg(1, 10.0, 1);
        shorter.duration = Some(Duration::from_secs(9));
        assert_eq!(a, RunIdentity::of(&shorter));
    }

    #[test]
    fn merge_refuses_what_is_not_one_run() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let (p, q) = (Path::new("a.json"), Path::new("b.json"));
        let run = |id: Option<&str>, seed| RunIdentity {
            id: id.map(String::from),
            seed,
            plan: "p".into(),
        };
        let ok = |x: &RunIdentity, y: &RunIdentity, late: u64| {
            same_run(&[
                (p, Some(x), Some(t0)),
                (q, Some(y), Some(t0 + Duration::from_secs(late))),
            ])
        };
        assert!(ok(&run(None, 1), &run(None, 1), 4).is_ok());
        let e = ok(&run(None, 1), &run(None, 1), 6).expect_err("6 s apart");
        assert!(e.contains("6.0 s apart") && e.contains("--run-id"), "{e}");
        assert!(ok(&run(Some("j"), 1), &run(Some("j"), 1), 600).is_ok());
        let e = ok(&run(Some("j"), 1), &run(Some("k"), 1), 0).expect_err("ids");
        assert!(e.contains("run ids \"j\" and \"k\""), "{e}");
        assert!(ok(&run(Some("j"), 1), &run(None, 1), 0).is_err());
        assert!(ok(&run(None, 1), &run(None, 2), 0).is_err());
        let other = RunIdentity {
            plan: "q".into(),
            ..run(None, 1)
        };
        assert!(ok(&run(None, 1), &other, 0).is_err());
        // Reports from before run identities: only their starts are compared.
        assert!(same_run(&[(p, None, Some(t0)), (q, None, Some(t0))]).is_ok());
    }

    #[test]
    fn a_run_id_is_short_and_printable() {
        let id = |s: &str| {
            RunIdArgs {
                run_id: Some(s.into()),
            }
            .validated()
        };
        assert_eq!(id("3f2a-uid").expect("valid"), Some("3f2a-uid".into()));
        for bad in ["", "a b", "tab\there", &"x".repeat(129)] {
            assert!(id(bad).is_err(), "{bad:?}");
        }
    }
}
