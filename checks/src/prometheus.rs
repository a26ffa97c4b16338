//! A real Prometheus server for the end-to-end check: started on a loopback port with a
//! config and rule files written to a temporary directory, queried through its HTTP API, and
//! killed when dropped.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One sample of an instant query.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    dir: tempfile::TempDir,
    pub addr: SocketAddr,
    client: reqwest::Client,
}

/// A loopback port that was free a moment ago (for processes that cannot report the port
/// they bound).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

impl Prometheus {
    /// Starts `binary` on `addr` (a loopback address, see [`free_port`]) with `config` as
    /// prometheus.yml and `files` (relative path, text) beside it, and waits until it reports
    /// ready.
    pub async fn start(
        binary: &Path,
        addr: SocketAddr,
        config: &str,
        files: &[(String, String)],
    ) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let write = |rel: &str, text: &str| {
            let p = dir.path().join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", p.display()))?;
            }
            std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))
        };
        write("prometheus.yml", config)?;
        for (rel, text) in files {
            write(rel, text)?;
        }
        if !addr.ip().is_loopback() {
            return Err(format!("{addr}: Prometheus only runs on loopback here"));
        }
        let log = std::fs::File::create(dir.path().join("prometheus.log"))
            .map_err(|e| format!("log file: {e}"))?;
        let child = Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--storage.tsdb.retention.time=1h")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let prom = Prometheus {
            child,
            dir,
            addr,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| format!("http client: {e}"))?,
        };
        prom.wait_ready(Duration::from_secs(30)).await?;
        Ok(prom)
    }

    async fn wait_ready(&self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        let url = format!("http://{}/-/ready", self.addr);
        loop {
            if let Ok(r) = self.client.get(&url).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "Prometheus was not ready within {limit:?}; its log:\n{}",
                    self.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The tail of Prometheus's own log, for failure messages.
    pub fn log(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    async fn api(&self, path: &str, form: &[(&str, &str)]) -> Result<Value, String> {
        let url = format!("http://{}{path}", self.addr);
        let body: Value = self
            .client
            .post(&url)
            .form(form)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("{url}: not JSON: {e}"))?;
        if body["status"] != "success" {
            return Err(format!("{url} {form:?}: {body}"));
        }
        Ok(body["data"].clone())
    }

    /// An instant query at the current time; a range or scalar result is an error.
    pub async fn query(&self, expr: &str) -> Result<Vec<Sample>, String> {
        let data = self.api("/api/v1/query", &[("query", expr)]).await?;
        if data["resultType"] != "vector" {
            return Err(format!("{expr}: expected a vector, got {data}"));
        }
        let samples = data["result"]
            .as_array()
            .ok_or_else(|| format!("{expr}: no result list"))?;
        samples
            .iter()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                let value = s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .ok_or_else(|| format!("{expr}: bad sample {s}"))?;
                Ok(Sample { labels, value })
            })
            .collect()
    }

    /// The health of every scrape target: (job, health, last error).
    pub async fn targets(&self) -> Result<Vec<(String, String, String)>, String> {
        let url = format!("http://{}/api/v1/targets", self.addr);
        let body: Value = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        Ok(body["data"]["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                let s = |k: &str| t[k].as_str().unwrap_or_default().to_string();
                (
                    t["labels"]["job"].as_str().unwrap_or_default().to_string(),
                    s("health"),
                    s("lastError"),
                )
            })
            .collect())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
