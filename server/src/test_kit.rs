//! Helpers for the tests of every crate that runs the order server, behind the `test-kit`
//! feature (as tokio's `test-util` is): an order server on loopback with its address and a
//! stop handle, scraping and parsing its `/metrics`, a process's resident memory, waiting for
//! a child process to exit, where the workspace keeps the external tools its checks run, and
//! reading the READMEs' sentences and a `--help` text's flags, so tests can hold the two to
//! each other. Not part of the server's API.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::App;
use crate::exposition::Exposition;
use crate::{Config, ShutdownReport};

/// An order server in this process on 127.0.0.1:0, stopped by [`TestServer::shutdown`] or
/// when the runtime ends.
#[derive(Debug)]
pub struct TestServer {
    pub addr: SocketAddr,
    /// The fault API's address, when started with it.
    pub admin: Option<SocketAddr>,
    pub client: reqwest::Client,
    app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<ShutdownReport>>,
}

impl TestServer {
    pub async fn start(config: Config) -> Self {
        Self::start_with_admin(config, false).await
    }

    /// Panics when it cannot bind or build, as a test set-up does.
    pub async fn start_with_admin(config: Config, admin: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let admin_listener = match admin {
            true => Some(TcpListener::bind("127.0.0.1:0").await.expect("bind admin")),
            false => None,
        };
        Self::start_on(listener, admin_listener, config)
    }

    /// On listeners the test bound itself (a server restarted on the same port, say).
    pub fn start_on(
        listener: TcpListener,
        admin_listener: Option<TcpListener>,
        config: Config,
    ) -> Self {
        let addr = listener.local_addr().expect("addr");
        let admin = admin_listener
            .as_ref()
            .map(|l| l.local_addr().expect("addr"));
        let app = Arc::new(App::new(config).expect("app"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(crate::server::serve_app(
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
            client: reqwest::Client::new(),
            app,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `http://ADDR` with `path` appended.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The fault API's URL; panics when started without it.
    pub fn admin_url(&self) -> String {
        format!("http://{}/admin/faults", self.admin.expect("admin enabled"))
    }

    pub fn is_ready(&self) -> bool {
        self.app.is_ready()
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

/// A process's resident set size, from /proc (0 where there is none).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Waits up to `limit` for `child` to exit; `None` if it is still running then.
pub fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The workspace's own external tools (Prometheus, promtool, Alertmanager, amtool, kustomize),
/// which `scripts/tools` puts here.
pub fn project_tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/bin")
}

/// Whether the tests run under CI, where a missing tool is a failure.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The text of one of the workspace's READMEs (`README.md`, `README.zh-CN.md`).
pub fn readme(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The sentence of `text` from `marker` to its full stop (`. ` or `。`), lines joined.
pub fn sentence(text: &str, marker: &str) -> String {
    let joined = text.replace('\n', " ");
    let at = joined
        .find(marker)
        .unwrap_or_else(|| panic!("no sentence naming {marker}"));
    let rest = &joined[at..];
    let end = [". ", "。"]
        .iter()
        .filter_map(|stop| rest.find(stop))
        .min()
        .unwrap_or(rest.len());
    rest[..end].to_string()
}

/// The backticked `--flags` in `text`.
pub fn backticked_flags(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|t| t.starts_with("--") && !t.contains(' '))
        .map(str::to_string)
        .collect()
}

/// The flags of a clap `--help` text that show no `[env: ...]`, `--help` and `--version`
/// aside.
pub fn flags_without_env(help: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut current: Option<(String, bool)> = None;
    for line in help.lines() {
        // A flag's own line: `  -x, --name` or six spaces and `--name`; its text is indented
        // further.
        let flag = line.strip_prefix("      --").or_else(|| {
            line.strip_prefix("  -")
                .and_then(|l| l.get(3..))
                .and_then(|l| l.strip_prefix("--"))
        });
        if let Some(f) = flag {
            out.extend(current.take().filter(|(_, env)| !env).map(|(f, _)| f));
            let name = f.split([' ', '=', '<', ',']).next().unwrap_or_default();
            // Short help puts `[env: ...]` on the flag's line, long help below it.
            current = Some((format!("--{name}"), line.contains("[env: ")));
        } else if let Some((_, env)) = current.as_mut() {
            *env |= line.contains("[env: ");
        }
    }
    out.extend(current.filter(|(_, env)| !env).map(|(f, _)| f));
    out.remove("--help");
    out.remove("--version");
    out
}
