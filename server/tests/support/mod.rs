//! Test harness: an in-process order server on 127.0.0.1:0 with a shutdown trigger, the
//! server binary as a child process (with its log lines and RSS), and helpers to scrape and
//! parse `/metrics`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc};

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

/// The server binary on 127.0.0.1:0 with JSON logs; returns it, its address and its log lines.
pub fn spawn_server(extra: &[&str]) -> (Child, SocketAddr, mpsc::Receiver<String>) {
    let (child, started, log) = spawn_server_logged(extra);
    let addr = started["fields"]["listen"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("listen address in the start-up line");
    (child, addr, log)
}

/// Like [`spawn_server`], returning the parsed start-up log line instead of the address.
pub fn spawn_server_logged(extra: &[&str]) -> (Child, serde_json::Value, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_order-server"))
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn order-server");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = rx
        .iter()
        .find(|l| l.contains("order-server started"))
        .expect("start-up line");
    let line = serde_json::from_str(&started).expect("json log");
    (child, line, rx)
}

pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
