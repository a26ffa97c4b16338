//! A real Prometheus server for the end-to-end check: started on a loopback port the way the
//! compose stack starts it (the service's `command` from `docker-compose.yml`), with a config
//! and rule files written where the stack mounts them, queried through its HTTP API, and
//! killed when dropped.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;

use serde_json::Value;

use crate::daemon::Daemon;

/// One sample of an instant query.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug)]
pub struct Prometheus {
    daemon: Daemon,
    pub addr: SocketAddr,
}

/// A loopback port that was free a moment ago (for processes that cannot report the port
/// they bound).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

impl Prometheus {
    /// Starts `binary` on `addr` (a loopback address, see [`free_port`]) with the compose
    /// service's flags: `config` is written as the mounted `/etc/prometheus/prometheus.yml`
    /// and `files` (relative path, text) beside it, `/prometheus` is a scratch directory.
    /// Waits until it reports ready.
    pub async fn start(
        binary: &Path,
        root: &Path,
        addr: SocketAddr,
        config: &str,
        files: &[(String, String)],
    ) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let etc = dir.path().join("etc");
        let write = |rel: &str, text: &str| {
            let p = etc.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", p.display()))?;
            }
            std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))
        };
        write("prometheus.yml", config)?;
        for (rel, text) in files {
            write(rel, text)?;
        }
        let data = dir.path().join("data");
        let mut args = crate::compose::command(
            root,
            "prometheus",
            &[("/etc/prometheus", &etc), ("/prometheus", &data)],
        )?;
        args.push(format!("--web.listen-address={addr}"));
        let daemon = Daemon::start("prometheus", binary, &args, dir, addr, "/-/ready").await?;
        Ok(Prometheus { daemon, addr })
    }

    /// The tail of Prometheus's own log, for failure messages.
    pub fn log(&self) -> String {
        self.daemon.log()
    }

    /// Sends an API request (`form` as a POST body, or as the query of a GET) and returns
    /// the answer's `data` when its status is success.
    async fn api(&self, path: &str, form: &[(&str, &str)], post: bool) -> Result<Value, String> {
        let url = format!("http://{}{path}", self.addr);
        let client = &self.daemon.client;
        let request = match post {
            true => client.post(&url).form(form),
            false => client.get(&url).query(form),
        };
        let body: Value = request
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
        let data = self.api("/api/v1/query", &[("query", expr)], true).await?;
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

    /// The values of `label` on the series matching `selector` (all series when `None`) over
    /// the last `window`, sorted: the `/api/v1/label/<label>/values` call Grafana makes for a
    /// `label_values(...)` variable.
    pub async fn label_values(
        &self,
        label: &str,
        selector: Option<&str>,
        window: std::time::Duration,
    ) -> Result<Vec<String>, String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?;
        let (start, end) = (
            (now - window).as_secs().to_string(),
            now.as_secs().to_string(),
        );
        let mut params = vec![("start", start.as_str()), ("end", end.as_str())];
        if let Some(m) = selector {
            params.push(("match[]", m));
        }
        // The label-values endpoint takes GET only.
        let data = self
            .api(&format!("/api/v1/label/{label}/values"), &params, false)
            .await?;
        let mut values: Vec<String> = data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        values.sort();
        Ok(values)
    }

    /// The health of every scrape target: (job, health, last error).
    pub async fn targets(&self) -> Result<Vec<(String, String, String)>, String> {
        let body = self.daemon.get_json("/api/v1/targets").await?;
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
