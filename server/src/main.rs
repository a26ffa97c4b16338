//! Binary edge of the order server: parses the command line, sets up logging and signals,
//! binds the listeners and runs [`order_server::serve`] until SIGTERM or Ctrl-C.

use std::io::IsTerminal;

use anyhow::Context;
use clap::Parser;
use order_server::config::{Command, LogFormat, ServerArgs};
use order_server::Cli;
use tokio::net::TcpListener;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Some(Command::Healthcheck {
            addr,
            path,
            timeout,
        }) => runtime
            .block_on(order_server::healthcheck::check(addr, &path, timeout))
            .map_err(anyhow::Error::from),
        None => runtime.block_on(run(cli.server)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: ServerArgs) -> anyhow::Result<()> {
    init_logging(&args)?;
    let config = args.to_config()?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
    let admin = match args.admin_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--admin-listen)"))?,
        ),
        None => None,
    };
    let shutdown = shutdown_signal()?;
    tracing::info!(
        listen = %listener.local_addr()?,
        admin = ?admin.as_ref().and_then(|l| l.local_addr().ok()),
        admin_token = args.admin_token.is_some(),
        timezone = %config.timezone,
        simulate = config.sim.enabled,
        seed = config.sim.seed,
        food_latency = ?config.sim.median_latency[0],
        clothing_latency = ?config.sim.median_latency[1],
        latency_sigma = config.sim.sigma,
        load_knee = config.sim.load_knee,
        error_rate = config.sim.error_rate,
        shutdown_delay = ?config.shutdown_delay,
        drain_timeout = ?config.drain_timeout,
        version = order_server::VERSION,
        commit = order_server::COMMIT,
        "order-server started"
    );
    let report = order_server::serve(listener, admin, config, shutdown).await?;
    tracing::info!(
        connections_cut = report.connections_cut,
        "order-server stopped"
    );
    Ok(())
}

fn init_logging(args: &ServerArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .with_context(|| format!("invalid --log filter {:?}", args.log))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match args.log_format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

/// Completes on the first SIGTERM or Ctrl-C; a second one exits at once (130 or 143).
///
/// The handlers are installed here, synchronously, before the caller logs "started": a
/// supervisor that sends SIGTERM right after seeing that line must get a graceful drain,
/// not the default action (which kills the process with status 15).
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot install the SIGINT handler")?;
    Ok(async move {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = int.recv() => tracing::info!("Ctrl-C received; shutting down"),
                _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
            }
            // The first signal drains; a second one ends the process at once, with the
            // shell's status for that signal (130 for SIGINT, 143 for SIGTERM).
            tokio::spawn(async move {
                let code = tokio::select! {
                    _ = int.recv() => 130,
                    _ = term.recv() => 143,
                };
                tracing::warn!("second signal during the drain: exiting without waiting");
                std::process::exit(code);
            });
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::info!("Ctrl-C received; shutting down");
            } else {
                std::future::pending::<()>().await;
            }
        }
    })
}
