//! Which executor carries out a run's dispatch, made ready before the run's clock starts: the
//! paced engine (plain http over HTTP/1.1 on Linux) with the connections for its first
//! requests already open, or the tokio path (everything else). Then it carries the dispatch
//! out, drain included.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::client::OrderClient;
use crate::config::RunConfig;
use crate::dispatch::{Dispatch, StopReason};
use crate::recorder::Recorder;
use crate::run::RunError;

/// What will carry out the run.
#[derive(Debug)]
pub enum Executor<'a> {
    #[cfg(target_os = "linux")]
    Engine(crate::engine::Ready),
    Tokio(&'a OrderClient),
}

impl<'a> Executor<'a> {
    /// The paced engine when the target is plain http on Linux, its first connections open;
    /// the tokio path otherwise.
    pub async fn prepare(cfg: &RunConfig, client: &'a OrderClient) -> Result<Self, RunError> {
        #[cfg(not(target_os = "linux"))]
        let _ = cfg;
        #[cfg(target_os = "linux")]
        if let Some(urls) = client.plain_urls() {
            let target = crate::engine::Target::new(urls, &cfg.client, cfg.max_in_flight)?;
            let first_rate = order_server::contract::OrderType::ALL
                .iter()
                .map(|&t| cfg.plan.rate(0.0, t))
                .sum();
            return Ok(Executor::Engine(
                crate::engine::Ready::open(target, first_rate).await,
            ));
        }
        Ok(Executor::Tokio(client))
    }

    /// Carries out the dispatch, drain included, calling `stopped` when the schedule stops;
    /// why it stopped, how long scheduling ran, and the dispatch back for its unsent counts.
    pub async fn run(
        self,
        cfg: &RunConfig,
        mut dispatch: Dispatch,
        recorder: &Arc<Recorder>,
        start: Instant,
        stop: impl Future<Output = ()>,
        stopped: impl FnOnce() + Send + 'static,
    ) -> Result<(StopReason, Duration, Dispatch), RunError> {
        match self {
            #[cfg(target_os = "linux")]
            Executor::Engine(ready) => {
                on_engine(ready, dispatch, cfg.drain, recorder, start, stop, stopped).await
            }
            Executor::Tokio(client) => {
                let (by, took) = crate::tokio_path::run(
                    &mut dispatch,
                    client,
                    cfg.max_in_flight,
                    cfg.drain,
                    recorder,
                    start,
                    stop,
                    stopped,
                )
                .await;
                Ok((by, took, dispatch))
            }
        }
    }
}

/// The paced engine on a thread of its own, with `stop` passed on as a flag.
#[cfg(target_os = "linux")]
async fn on_engine(
    ready: crate::engine::Ready,
    mut dispatch: Dispatch,
    drain: Duration,
    recorder: &Arc<Recorder>,
    start: Instant,
    stop: impl Future<Output = ()>,
    stopped: impl FnOnce() + Send + 'static,
) -> Result<(StopReason, Duration, Dispatch), RunError> {
    let flag = Arc::new(AtomicBool::new(false));
    let (rec, f) = (Arc::clone(recorder), Arc::clone(&flag));
    let job = tokio::task::spawn_blocking(move || {
        let out = crate::engine::run(
            ready,
            &mut dispatch,
            drain,
            &rec,
            start.into_std(),
            &f,
            stopped,
        );
        (out, dispatch)
    });
    tokio::pin!(stop, job);
    let joined = tokio::select! {
        r = &mut job => r,
        () = &mut stop => {
            flag.store(true, Ordering::Relaxed);
            job.await
        }
    };
    let (out, dispatch) = joined.map_err(RunError::EngineThread)?;
    let (by, took) = out.map_err(RunError::Engine)?;
    Ok((by, took, dispatch))
}
