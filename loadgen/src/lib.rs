//! `loadgen`: an open-model load generator for the order service. It sends food and clothing
//! orders on a schedule that never waits for answers, so a slow target cannot slow the offered
//! load (no coordinated omission); it measures latency from each request's intended send time
//! beside the service time, reports text or JSON, exports its own Prometheus metrics, and exits
//! by documented rules.
//!
//! # Layout
//!
//! Following one run from `main`: [`cli`] validates the command line into a [`RunConfig`];
//! [`run`](mod@run) starts what the run needs and hands the [`dispatch`] core's steps to an
//! executor, `engine` or [`tokio_path`], which record into the [`recorder`]; [`report`] turns
//! the recorder's numbers into the report.
//!
//! - [`schedule`]: pure rate model: shapes, phases, due times (uniform or Poisson), shards.
//! - [`shape`]: the shape options of the command line and of scenario phases, validated.
//! - [`scenario`]: TOML scenarios (phases with faults), bundled ones included.
//! - [`cli`]: command line and environment, validated once into a [`RunConfig`] ([`config`]).
//! - [`control`]: `--control-addr`, the live control API and its page (a front-end of
//!   [`live`]).
//! - [`redact`]: the command line as reports show it, credentials hidden.
//! - [`endpoint`]: the target URL, its DNS check, and extra headers.
//! - [`run`](mod@run): the run from configuration to report; [`run()`] is the entry.
//! - [`embedded`]: the order server started in-process when there is no `--target`.
//! - [`faults`]: the fault API client and the driver that switches scenario faults on.
//! - [`dispatch`]: the sans-I/O dispatch core: the next step (send, wait, stop and why), and
//!   what was never sent; it takes a steerable run's live changes.
//! - [`change`]: live changes as values and what each does to the plan (pure).
//! - [`live`]: a steerable run's shared state: the changes' inbox, the plan now, the events.
//! - [`monitor`]: the last minutes of a run, a point a second, for the live front-ends.
//! - `engine` (Linux): the executor for plain-http targets: dispatch on its own thread, one
//!   wake-up per request, answers timed by the kernel.
//! - [`tokio_path`]: the executor for everything else, on the reqwest [`client`].
//! - [`client`]: the reqwest client (https, HTTP/2, plain http off Linux) and its TLS check.
//! - [`outcome`]: the closed set of outcome classes.
//! - [`answer`]: incremental framing of HTTP/1.1 answers, for the engine.
//! - [`capacity`]: `loadgen capacity`, the SLO capacity search (a front-end of [`live`]).
//! - [`merge`]: `loadgen merge`, shard reports combined into one without loss.
//! - [`run_id`]: which run a report belongs to (`--run-id`), so merge refuses other runs'
//!   shards.
//! - [`hdr`]: the histograms' interchange forms: V2 base64 and the `.hgrm` text.
//! - `stamp` (Linux): the kernel's receive timestamps, for the engine and the benchmark's
//!   floor clients.
//! - [`pacer`]: wakes the tokio path at each send time to the microsecond (timerfd).
//! - [`recorder`]: counts and HdrHistograms (corrected, service, lag) per order type.
//! - [`threshold`]: `--threshold` expressions (`p99<250ms`, `food.error_ratio<0.01`).
//! - [`report`]: the end-of-run report, the thresholds' verdicts, text and JSON renderings.
//! - [`report_file`]: `--report-file`, checked before the run and replaced whole.
//! - [`telemetry`]: the generator's own metrics and their `/metrics` endpoint.
//! - [`tui`]: the full-screen terminal view and its keys (a front-end of [`live`]).
//! - [`progress`]: the once-a-second tick: the target-rate gauge, the series' sampler, the
//!   live progress line.
//! - [`sampler`]: builds the time series from the recorder, tick by tick.
//! - [`series`]: the time series as the report carries it; merging points, aligning shards.
//! - [`html`]: `--report-html`, the report as one self-contained page of SVG plots.

pub mod answer;
pub mod capacity;
pub mod change;
pub mod cli;
pub mod client;
pub mod config;
pub mod control;
pub mod dispatch;
pub mod embedded;
pub mod endpoint;
#[cfg(target_os = "linux")]
pub mod engine;
pub mod executor;
pub mod faults;
pub mod hdr;
pub mod html;
pub mod live;
pub mod merge;
pub mod monitor;
pub mod outcome;
pub mod pacer;
pub mod progress;
pub mod recorder;
pub mod redact;
pub mod report;
pub mod report_file;
pub mod run;
pub mod run_id;
pub mod sampler;
pub mod scenario;
pub mod schedule;
pub mod series;
pub mod shape;
#[cfg(target_os = "linux")]
pub mod stamp;
pub mod telemetry;
pub mod threshold;
pub mod tokio_path;
pub mod tui;

pub use cli::{Cli, ConfigError};
pub use config::RunConfig;
pub use report::Report;
pub use run::{run, run_publishing, RunError};

/// Exit codes of the binary.
pub mod exit {
    /// Every threshold met.
    pub const OK: u8 = 0;
    /// A threshold was missed.
    pub const THRESHOLD: u8 = 1;
    /// Usage error, runtime error, or the target was never reached.
    pub const ERROR: u8 = 2;
    /// The report could not be written: standard output closed (a broken pipe) or a report
    /// file that failed after the run. Whatever the thresholds said, nobody got the verdict.
    pub const UNWRITTEN: u8 = 3;
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
