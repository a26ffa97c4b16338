//! A server process the checks start on loopback (Prometheus, Alertmanager): its working
//! directory, its log, an HTTP client for its API, readiness polling, and a kill when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Daemon {
    child: Child,
    /// The scratch directory (config, data, log), removed with the daemon.
    _dir: tempfile::TempDir,
    log: PathBuf,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
}

impl Daemon {
    /// Starts `binary` with `args`, its stderr in `<dir>/<name>.log`, and waits until
    /// `ready_path` on `addr` answers 2xx. `dir` is the process's scratch directory.
    pub async fn start(
        name: &str,
        binary: &Path,
        args: &[String],
        dir: tempfile::TempDir,
        addr: SocketAddr,
        ready_path: &str,
    ) -> Result<Self, String> {
        if !addr.ip().is_loopback() {
            return Err(format!("{addr}: {name} only runs on loopback here"));
        }
        let log = dir.path().join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log).map_err(|e| format!("log file: {e}"))?;
        let child = Command::new(binary)
            .args(args)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let daemon = Daemon {
            child,
            _dir: dir,
            log,
            addr,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| format!("http client: {e}"))?,
        };
        daemon
            .wait_ready(name, ready_path, Duration::from_secs(30))
            .await?;
        Ok(daemon)
    }

    async fn wait_ready(&self, name: &str, path: &str, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        let url = format!("http://{}{path}", self.addr);
        loop {
            if let Ok(r) = self.client.get(&url).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{name} was not ready within {limit:?}; its log:\n{}",
                    self.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The tail of the process's own log, for failure messages.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// GETs `path` and parses the JSON answer.
    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value, String> {
        let url = format!("http://{}{path}", self.addr);
        self.client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("{url}: not JSON: {e}"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
