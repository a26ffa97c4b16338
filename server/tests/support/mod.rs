//! Test harness: an in-process order server on 127.0.0.1:0 with a shutdown trigger, and
//! helpers to scrape and parse its `/metrics`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use order_server::app::App;
use order_server::exposition::Exposition;
use order_server::{Config, ShutdownReport};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestServer {
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub app: Arc<App>,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<ShutdownReport>>,
}

impl TestServer {
    pub async fn start(config: Config) -> Self {
        Self::start_with_admin(config, false).await
    }

    pub async fn start_with_admin(config: Config, admin: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let admin_listener = if admin {
            Some(TcpListener::bind("127.0.0.1:0").await.expect("bind admin"))
        } else {
            None
        };
        let admin = admin_listener
            .as_ref()
            .map(|l| l.local_addr().expect("addr"));
        let app = Arc::new(App::new(config).expect("app"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(order_server::serve_app(
            Arc::clone(&app),
            listener,
            admin_listener,
            async move {
                let _ = stopped.await;
            },
        ));
        TestServer {
            addr,
            admin,
            app,
            client: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}/admin/faults", self.admin.expect("admin enabled"))
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn scrape_text(&self) -> String {
        let r = self.get("/metrics").await;
        assert_eq!(r.status(), 200);
        r.text().await.expect("body")
    }

    pub async fn scrape(&self) -> Exposition {
        Exposition::parse(&self.scrape_text().await).expect("valid exposition")
    }

    /// Triggers shutdown without waiting for the drain.
    pub fn begin_shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    pub async fn shutdown(mut self) -> ShutdownReport {
        self.begin_shutdown();
        self.task
            .take()
            .expect("running")
            .await
            .expect("serve task")
    }
}

/// Simulation off: fast and deterministic, for tests that are not about the simulation.
pub fn quiet_config() -> Config {
    let mut c = Config::default();
    c.sim.enabled = false;
    c
}

/// Finds an external tool; under CI a missing tool is a failure, elsewhere a loud skip.
pub fn tool(name: &str) -> Option<std::path::PathBuf> {
    // The project's own promtool (scripts/tools), never whatever Prometheus is on PATH.
    let found = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/tools/bin")
        .join(name);
    let found = found.is_file().then_some(found);
    if found.is_none() {
        let hint = format!("{name} not found: get it with `bash scripts/tools`");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{hint} (required under CI)");
        }
        eprintln!("SKIPPED: {hint}");
    }
    found
}
