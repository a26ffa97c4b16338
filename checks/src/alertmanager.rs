//! A real Alertmanager for the incident drill: started on a loopback port with the compose
//! service's flags and the shipped `deploy/alertmanager` folder as its mounted config, no
//! cluster peer, and read through its v2 API (`/api/v2/alerts`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use crate::daemon::Daemon;

/// One alert as Alertmanager holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    /// `active`, `suppressed` (silenced or inhibited) or `unprocessed`.
    pub state: String,
    /// Fingerprints of the alerts that inhibit this one.
    pub inhibited_by: Vec<String>,
    pub receivers: Vec<String>,
    pub fingerprint: String,
}

impl Alert {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

#[derive(Debug)]
pub struct Alertmanager {
    daemon: Daemon,
    pub addr: SocketAddr,
}

impl Alertmanager {
    /// Starts `binary` on `addr` as the compose stack does, reading the shipped config from
    /// `<root>/deploy/alertmanager`, and waits until it reports ready.
    pub async fn start(binary: &Path, root: &Path, addr: SocketAddr) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let config = root.join("deploy/alertmanager");
        let data = dir.path().join("data");
        let mut args = crate::compose::command(
            root,
            "alertmanager",
            &[("/etc/alertmanager", &config), ("/alertmanager", &data)],
        )?;
        args.push(format!("--web.listen-address={addr}"));
        // A single instance: no gossip port.
        args.push("--cluster.listen-address=".into());
        let daemon = Daemon::start("alertmanager", binary, &args, dir, addr, "/-/ready").await?;
        Ok(Alertmanager { daemon, addr })
    }

    /// The tail of Alertmanager's own log, for failure messages.
    pub fn log(&self) -> String {
        self.daemon.log()
    }

    /// Every alert Alertmanager holds that has not resolved: active, silenced and inhibited.
    pub async fn alerts(&self) -> Result<Vec<Alert>, String> {
        let body = self.daemon.get_json("/api/v2/alerts").await?;
        let list = body
            .as_array()
            .ok_or_else(|| format!("/api/v2/alerts: not a list: {body}"))?;
        Ok(list
            .iter()
            .map(|a| {
                let strings = |v: &serde_json::Value| -> Vec<String> {
                    v.as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                };
                Alert {
                    labels: a["labels"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().into()))
                                .collect()
                        })
                        .unwrap_or_default(),
                    state: a["status"]["state"].as_str().unwrap_or_default().into(),
                    inhibited_by: strings(&a["status"]["inhibitedBy"]),
                    receivers: a["receivers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| r["name"].as_str().map(String::from))
                        .collect(),
                    fingerprint: a["fingerprint"].as_str().unwrap_or_default().into(),
                }
            })
            .collect())
    }
}
