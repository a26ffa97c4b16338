//! The order server started in-process on loopback for a run without `--target`, with its
//! fault API on a second loopback port, and stopped after the run.

use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A running embedded order server.
#[derive(Debug)]
pub struct Embedded {
    pub url: String,
    pub admin_url: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Embedded {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let admin = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let admin_addr = admin.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let config = order_server::Config::default();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = order_server::serve(listener, Some(admin), config, shutdown).await {
                tracing::error!(error = %e, "embedded order server failed");
            }
        });
        Ok(Embedded {
            url: format!("http://{addr}/"),
            admin_url: format!("http://{admin_addr}/"),
            stop,
            task,
        })
    }

    /// Stops it and waits for its drain.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
