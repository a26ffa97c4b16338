//! Server configuration: the clap-derived command line (every flag also an environment
//! variable) and its one-time conversion into a validated [`Config`] that the rest of the crate
//! uses. Nothing outside this module looks at raw arguments.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::sim::SimConfig;

/// Source of wall-clock time; injectable so tests can cross midnight without waiting.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Order service instrumented with custom Prometheus metrics.
///
/// Serves /makeFoodOrder and /makeClothingOrder (GET or POST), /metrics (Prometheus text
/// format), /healthz and /readyz. Every option can also be set through the environment
/// variable shown beside it.
#[derive(Debug, Parser)]
#[command(
    name = "order-server",
    version,
    about,
    long_about,
    allow_negative_numbers = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Probe a running server's /healthz (or --path) and exit 0 if it answers with any 2xx
    /// status, 1 otherwise (for container health checks in images that have no curl).
    Healthcheck {
        /// Address of the server to probe.
        #[arg(
            long,
            env = "ORDER_SERVER_HEALTHCHECK_ADDR",
            default_value = "127.0.0.1:5001"
        )]
        addr: SocketAddr,
        /// Path to GET; must start with "/" (e.g. /metrics to probe the load generator).
        #[arg(
            long,
            env = "ORDER_SERVER_HEALTHCHECK_PATH",
            default_value = "/healthz",
            value_parser = parse_path
        )]
        path: String,
        /// Give up after this long.
        #[arg(
            long,
            env = "ORDER_SERVER_HEALTHCHECK_TIMEOUT",
            default_value = "2s",
            value_parser = crate::config::parse_duration
        )]
        timeout: Duration,
    },
}

/// The longest duration any flag of either binary takes. Anything longer means a typo, and
/// adding it to a clock reading would overflow.
pub const MAX_FLAG_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// A duration flag (`250ms`, `10s`, `2h`): humantime's syntax, at most a year. Used by both
/// binaries' command lines, so clap's message names the flag whose value is out of range.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d > MAX_FLAG_DURATION {
        return Err(format!("{s:?} is longer than the limit of 366 days"));
    }
    Ok(d)
}

fn parse_path(s: &str) -> Result<String, String> {
    if s.starts_with('/') && !s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} must start with / and contain no spaces"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address for orders, /metrics and health (the guide's port is 5001).
    #[arg(long, env = "ORDER_SERVER_LISTEN", default_value = "0.0.0.0:5001")]
    pub listen: SocketAddr,

    /// Address of the fault-injection admin API; the API is off unless this is set. Keep it
    /// off the public port: anyone who reaches it can make the service fail.
    #[arg(long, env = "ORDER_SERVER_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,

    /// If set, admin requests must carry `Authorization: Bearer <token>`.
    #[arg(long, env = "ORDER_SERVER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Time zone whose midnight resets order_total_by_everyday (IANA name).
    #[arg(long, env = "ORDER_SERVER_TIMEZONE", default_value = "Asia/Shanghai")]
    pub timezone: String,

    /// Simulated processing time and failures; `off` for benchmarks (no waiting, no
    /// deliberate failures).
    #[arg(long, env = "ORDER_SERVER_SIMULATE", value_enum, default_value = "on")]
    pub simulate: Switch,

    /// Seed for simulated latency, failures and amounts (same seed, same sequence).
    #[arg(long, env = "ORDER_SERVER_SEED", default_value_t = 42)]
    pub seed: u64,

    /// Median simulated processing time of a food order.
    #[arg(long, env = "ORDER_SERVER_FOOD_LATENCY", default_value = "30ms", value_parser = crate::config::parse_duration)]
    pub food_latency: Duration,

    /// Median simulated processing time of a clothing order.
    #[arg(long, env = "ORDER_SERVER_CLOTHING_LATENCY", default_value = "45ms", value_parser = crate::config::parse_duration)]
    pub clothing_latency: Duration,

    /// Spread of simulated processing time (sigma of the log-normal; 0 = constant).
    #[arg(long, env = "ORDER_SERVER_LATENCY_SIGMA", default_value_t = 0.5)]
    pub latency_sigma: f64,

    /// Requests in flight at which simulated processing time has doubled (latency grows
    /// linearly with load).
    #[arg(long, env = "ORDER_SERVER_LOAD_KNEE", default_value_t = 200)]
    pub load_knee: u32,

    /// Base probability that an order fails (answers 500, counted as status="failed").
    #[arg(long, env = "ORDER_SERVER_ERROR_RATE", default_value_t = 0.0005)]
    pub error_rate: f64,

    /// After SIGTERM / Ctrl-C, turn /readyz 503 and keep accepting new connections this long
    /// before closing the listener, while endpoints and load balancers stop sending here
    /// (Kubernetes: a few seconds; 0 closes at once).
    #[arg(long, env = "ORDER_SERVER_SHUTDOWN_DELAY", default_value = "0s", value_parser = crate::config::parse_duration)]
    pub shutdown_delay: Duration,

    /// How long to wait for in-flight requests after SIGTERM / Ctrl-C before exiting.
    #[arg(long, env = "ORDER_SERVER_DRAIN_TIMEOUT", default_value = "10s", value_parser = crate::config::parse_duration)]
    pub drain_timeout: Duration,

    /// Close connections whose next request head has not arrived within this time of
    /// opening or of the previous answer (slowloris, idle keep-alive); never one with a
    /// request in progress.
    #[arg(long, env = "ORDER_SERVER_HEADER_TIMEOUT", default_value = "10s", value_parser = crate::config::parse_duration)]
    pub header_timeout: Duration,

    /// Answer 408 to a request whose body has not fully arrived within this time (slow
    /// uploads would otherwise hold an order slot forever).
    #[arg(long, env = "ORDER_SERVER_BODY_TIMEOUT", default_value = "10s", value_parser = crate::config::parse_duration)]
    pub body_timeout: Duration,

    /// Orders processed at once; beyond it new orders are shed at once with 503 and
    /// Retry-After (counted as failed) instead of queueing without bound. Health and
    /// /metrics are never shed.
    #[arg(long, env = "ORDER_SERVER_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: u32,

    /// A service of known capacity, for capacity searches and drills: orders queue (first
    /// come, first served) for one of this many workers, and each holds its worker for
    /// --service-time instead of the simulated time. Needs --service-time.
    #[arg(long, env = "ORDER_SERVER_WORKERS", requires = "service_time")]
    pub workers: Option<u32>,

    /// How long each order holds its worker (with --workers): the service saturates at
    /// workers / service time orders a second.
    #[arg(long, env = "ORDER_SERVER_SERVICE_TIME", requires = "workers", value_parser = crate::config::parse_duration)]
    pub service_time: Option<Duration>,

    /// `off` records nothing per request (the benchmark baseline that measures what the
    /// instrumentation costs); /metrics still answers, with the start-up values.
    #[arg(long, env = "ORDER_SERVER_METRICS", value_enum, default_value = "on")]
    pub metrics: Switch,

    /// Log format.
    #[arg(
        long,
        env = "ORDER_SERVER_LOG_FORMAT",
        value_enum,
        default_value = "human"
    )]
    pub log_format: LogFormat,

    /// Log filter (tracing EnvFilter syntax, e.g. `info` or `order_server=debug`).
    #[arg(long, env = "ORDER_SERVER_LOG", default_value = "info")]
    pub log: String,
}

/// Invalid configuration values, each naming the option at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--timezone: unknown time zone {0:?} (use an IANA name such as Asia/Shanghai or UTC)")]
    TimeZone(String),
    #[error("--error-rate must be between 0 and 1, got {0}")]
    ErrorRate(f64),
    #[error("--latency-sigma must be between 0 and 3, got {0}")]
    Sigma(f64),
    #[error("--load-knee must be at least 1")]
    LoadKnee,
    #[error("--admin-token must not be empty")]
    EmptyToken,
    #[error("--max-in-flight must be at least 1")]
    MaxInFlight,
    #[error("--{0} must be longer than 0")]
    ZeroTimeout(&'static str),
    #[error("--workers must be from 1 to 100000 and --service-time from 1ms to 60s")]
    Queue,
}

/// Orders queue for `workers` workers, each order holding one for `service_time`: a service
/// whose capacity is known in closed form (an M/D/c queue under Poisson arrivals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueModel {
    pub workers: u32,
    pub service_time: Duration,
}

/// Validated settings the server runs with.
#[derive(Clone)]
pub struct Config {
    pub timezone: Tz,
    pub sim: SimConfig,
    pub admin_token: Option<String>,
    pub shutdown_delay: Duration,
    pub drain_timeout: Duration,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_in_flight: u32,
    /// `--workers` and `--service-time`: a service of known capacity instead of the simulation's
    /// processing time.
    pub queue: Option<QueueModel>,
    /// Per-request recording on (the default) or off (benchmark baseline).
    pub metrics: bool,
    /// How often the exporter folds the histogram samples recorded since into buckets: four
    /// times a second, each fold is short and few samples wait.
    pub upkeep_interval: Duration,
    pub clock: Clock,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("timezone", &self.timezone)
            .field("sim", &self.sim)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<set>"))
            .field("shutdown_delay", &self.shutdown_delay)
            .field("drain_timeout", &self.drain_timeout)
            .field("header_timeout", &self.header_timeout)
            .field("body_timeout", &self.body_timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("queue", &self.queue)
            .field("upkeep_interval", &self.upkeep_interval)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    /// The defaults of the command line: simulation on, Asia/Shanghai midnight.
    fn default() -> Self {
        Config {
            timezone: chrono_tz::Asia::Shanghai,
            sim: SimConfig::default(),
            admin_token: None,
            shutdown_delay: Duration::ZERO,
            drain_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_in_flight: 1024,
            queue: None,
            metrics: true,
            upkeep_interval: Duration::from_millis(250),
            clock: Arc::new(Utc::now),
        }
    }
}

impl ServerArgs {
    /// Checks every value once; the error names the flag.
    pub fn to_config(&self) -> Result<Config, ConfigError> {
        let timezone: Tz = self
            .timezone
            .parse()
            .map_err(|_| ConfigError::TimeZone(self.timezone.clone()))?;
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(ConfigError::ErrorRate(self.error_rate));
        }
        if !(0.0..=3.0).contains(&self.latency_sigma) {
            return Err(ConfigError::Sigma(self.latency_sigma));
        }
        if self.load_knee == 0 {
            return Err(ConfigError::LoadKnee);
        }
        if self.admin_token.as_deref() == Some("") {
            return Err(ConfigError::EmptyToken);
        }
        if self.max_in_flight == 0 {
            return Err(ConfigError::MaxInFlight);
        }
        for (name, d) in [
            ("drain-timeout", self.drain_timeout),
            ("header-timeout", self.header_timeout),
            ("body-timeout", self.body_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError::ZeroTimeout(name));
            }
        }
        let queue = match (self.workers, self.service_time) {
            (Some(workers), Some(service_time)) => {
                let ok = (1..=100_000).contains(&workers)
                    && (Duration::from_millis(1)..=Duration::from_secs(60)).contains(&service_time);
                if !ok {
                    return Err(ConfigError::Queue);
                }
                Some(QueueModel {
                    workers,
                    service_time,
                })
            }
            _ => None,
        };
        Ok(Config {
            queue,
            timezone,
            sim: SimConfig {
                enabled: self.simulate == Switch::On,
                seed: self.seed,
                median_latency: [self.food_latency, self.clothing_latency],
                sigma: self.latency_sigma,
                load_knee: self.load_knee,
                error_rate: self.error_rate,
            },
            admin_token: self.admin_token.clone(),
            shutdown_delay: self.shutdown_delay,
            drain_timeout: self.drain_timeout,
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            max_in_flight: self.max_in_flight,
            metrics: self.metrics == Switch::On,
            ..Config::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let cli = Cli::try_parse_from(std::iter::once("order-server").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.server.to_config().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_follow_the_guide() {
        let cli = Cli::try_parse_from(["order-server"]).expect("defaults parse");
        assert_eq!(cli.server.listen.port(), 5001);
        assert!(
            cli.server.admin_listen.is_none(),
            "fault API must be off by default"
        );
        let cfg = cli.server.to_config().expect("defaults valid");
        assert!(cfg.sim.enabled);
        assert_eq!(cfg.timezone, chrono_tz::Asia::Shanghai);
    }

    #[test]
    fn bad_values_name_the_flag() {
        let err = parse(&["--timezone", "Mars/Olympus"]).expect_err("bad tz");
        assert!(err.contains("--timezone"), "{err}");
        let err = parse(&["--error-rate", "1.5"]).expect_err("bad rate");
        assert!(err.contains("--error-rate"), "{err}");
        let err = parse(&["--simulate", "maybe"]).expect_err("bad switch");
        assert!(err.contains("--simulate"), "{err}");
        let err = parse(&["--drain-timeout", "soon"]).expect_err("bad duration");
        assert!(err.contains("--drain-timeout"), "{err}");
    }

    #[test]
    fn simulate_off_disables_simulation() {
        let cfg = parse(&["--simulate", "off"]).expect("valid");
        assert!(!cfg.sim.enabled);
    }
}
