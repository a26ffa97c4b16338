//! `order-server`: the order service of the Huawei Cloud AOM "Python custom metrics" guide,
//! rebuilt on hyper 1.x and instrumented through the `metrics` facade with
//! `metrics-exporter-prometheus`. It keeps the guide's endpoints and metric names, fixes the
//! guide's bugs, and behaves like a small shop (skewed latency that grows with load, rare
//! failures, injectable incidents) so its series are worth putting on a dashboard.
//!
//! # Layout
//!
//! What other crates use: [`serve`] and its [`Config`] (with the [`Cli`] it comes from), the
//! [`contract`] (metric names, buckets, label sets, the exposition's content type), the
//! [`FaultRequest`] the fault API takes, the text-format reader ([`exposition`]), the
//! container probe ([`healthcheck`]), the pieces the load generator's own `/metrics` endpoint
//! shares ([`render`], [`watchdog`]), and [`telemetry`] for the instrumentation benchmark.
//! The rest is the server's own.
//!
//! - [`contract`]: every metric name, HELP text, bucket layout and closed label set.
//! - [`config`]: command line and environment, validated once into a [`Config`].
//! - [`telemetry`]: the per-instance Prometheus recorder and pre-registered handles.
//! - `app`: routing, order handlers, health, `/metrics`, the admin fault API.
//! - `body`: answer bodies, sliced, with the watchdog's note on unsent `/metrics` texts.
//! - [`render`]: one render at a time, shared by concurrent scrapes.
//! - `sim`: simulated processing time, failures and order amounts (seeded).
//! - `faults`: injected faults for alert drills, with expiry.
//! - `daily`: orders since local midnight (the guide's daily gauge, done right).
//! - [`watchdog`]: closes connections that send no request head in time (one timer each).
//! - `server`: accept loops, HTTP/1.1 + h2c, upkeep, graceful drain; [`serve`] is the entry.
//! - [`exposition`]: a reader of the text format, for tests and the load generator.
//! - [`healthcheck`]: the container health probe subcommand.
//! - `test_kit` (feature `test-kit`): an order server on loopback and other test helpers.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let shutdown = async { let _ = tokio::signal::ctrl_c().await; };
//! order_server::serve(listener, None, order_server::Config::default(), shutdown).await?;
//! # Ok(()) }
//! ```

pub(crate) mod app;
pub(crate) mod body;
pub mod config;
pub mod contract;
pub(crate) mod daily;
pub mod exposition;
pub(crate) mod faults;
pub mod healthcheck;
pub mod render;
pub(crate) mod server;
pub(crate) mod sim;
pub mod telemetry;
#[cfg(feature = "test-kit")]
pub mod test_kit;
pub mod watchdog;

pub use config::{Cli, Config, ServerArgs};
pub use faults::{Fault, FaultError, FaultRequest};
pub use server::{serve, ServeError, ShutdownReport};
pub use sim::SimConfig;
pub use telemetry::{COMMIT, VERSION};
