//! `loadgen`: an open-model load generator for the order service. It sends food and clothing
//! orders on a schedule that never waits for answers, so a slow target cannot slow the offered
//! load (no coordinated omission); it measures latency from each request's intended send time
//! beside the service time, reports text or JSON, exports its own Prometheus metrics, and exits
//! by documented rules.
//!
//! # Layout
//!
//! - [`schedule`]: pure rate model: shapes, phases, due times (uniform or Poisson), shards.
//! - [`scenario`]: shape options and TOML scenarios (phases with faults), bundled ones included.
//! - [`cli`]: command line and environment, validated once into a [`RunConfig`].
//! - [`client`]: the reqwest client (https, HTTP/2, plain http off Linux), outcome classes,
//!   the fault API client.
//! - [`engine`]: the paced engine for plain-http targets on Linux: dispatch on its own thread,
//!   one wake-up per request, answers timed by the kernel.
//! - [`answer`]: incremental framing of HTTP/1.1 answers, for the engine.
//! - [`recorder`]: counts and HdrHistograms (corrected, service, lag) per order type.
//! - [`report`]: the end-of-run report, thresholds, text and JSON renderings.
//! - [`report_file`]: `--report-file`, checked before the run and replaced whole.
//! - [`telemetry`]: the generator's own metrics and their `/metrics` endpoint.
//! - [`progress`]: the live progress line and the target-rate gauge.
//! - [`pacer`]: wakes the dispatcher at each send time to the microsecond (timerfd).
//! - [`runner`]: the run itself: embedded target, dispatch loop, drain; [`run`] is the entry.

pub mod answer;
pub mod cli;
pub mod client;
#[cfg(target_os = "linux")]
pub mod engine;
pub mod pacer;
pub mod progress;
pub mod recorder;
pub mod report;
pub mod report_file;
pub mod runner;
pub mod scenario;
pub mod schedule;
pub mod telemetry;

pub use cli::{Cli, RunConfig};
pub use report::Report;
pub use runner::{run, run_publishing, RunError};

/// Exit codes of the binary.
pub mod exit {
    /// Every threshold met.
    pub const OK: u8 = 0;
    /// A threshold was missed.
    pub const THRESHOLD: u8 = 1;
    /// Usage error, runtime error, or the target was never reached.
    pub const ERROR: u8 = 2;
    /// A second Ctrl-C: stopped at once, no report.
    pub const ABORTED: u8 = 130;
}

/// The exit code a finished run earns.
pub fn exit_code(report: &Report) -> u8 {
    if !report.target_reached {
        exit::ERROR
    } else if !report.passed {
        exit::THRESHOLD
    } else {
        exit::OK
    }
}
