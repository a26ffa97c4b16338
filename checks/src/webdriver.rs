//! A page driven in a real browser: Debian's `chromedriver` started on a loopback port with
//! headless Chromium behind it (run the way this machine allows, as `browser` does), and the
//! few W3C WebDriver calls the control page's test needs, over plain HTTP: open a page, find
//! an element, type, click, run a script, take a screenshot. The driver and its browser end
//! when the [`Session`] is dropped.

use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::tools::tool;

/// How long the driver may take to start, and any one call to answer.
const LIMIT: Duration = Duration::from_secs(60);
/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser session; see the module documentation.
#[derive(Debug)]
pub struct Session {
    driver: Child,
    base: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Session {
    /// Starts chromedriver and a headless Chromium of `width` x `height` CSS pixels; `None`
    /// (or a panic under CI) when either is not installed.
    pub async fn start(width: u32, height: u32) -> Result<Option<Self>, String> {
        let (Some(driver), Some(chromium)) = (tool("chromedriver"), tool("chromium")) else {
            return Ok(None);
        };
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let child = Command::new(&driver)
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", driver.display()))?;
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut s = Session {
            driver: child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(LIMIT)
                .build()
                .map_err(|e| e.to_string())?,
            _profile: profile,
        };
        let started = Instant::now();
        loop {
            if let Ok(r) = s.http.get(format!("{}/status", s.base)).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if started.elapsed() > LIMIT {
                return Err("chromedriver did not start".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            format!("--user-data-dir={}", s._profile.path().display()),
            format!("--window-size={width},{height}"),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let v = s.call("POST", "/session", Some(caps)).await?;
        let id = v["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session id in {v}"))?;
        s.base = format!("{}/session/{id}", s.base);
        Ok(Some(s))
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "POST" => self.http.post(&url).json(&body.unwrap_or(json!({}))),
            "DELETE" => self.http.delete(&url),
            _ => self.http.get(&url),
        };
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status();
        let v: Value = resp
            .json()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        if !status.is_success() {
            return Err(format!("{method} {path}: {status}: {}", v["value"]));
        }
        Ok(v["value"].clone())
    }

    pub async fn open(&self, url: &str) -> Result<(), String> {
        self.call("POST", "/url", Some(json!({"url": url})))
            .await
            .map(drop)
    }

    /// The element `css` selects (the first).
    pub async fn find(&self, css: &str) -> Result<String, String> {
        let v = self
            .call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        v[ELEMENT]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{css}: no element in {v}"))
    }

    /// Empties the input `css` selects and types `text` into it.
    pub async fn type_into(&self, css: &str, text: &str) -> Result<(), String> {
        let e = self.find(css).await?;
        self.call("POST", &format!("/element/{e}/clear"), None)
            .await?;
        self.call(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        )
        .await
        .map(drop)
    }

    pub async fn click(&self, css: &str) -> Result<(), String> {
        let e = self.find(css).await?;
        self.call("POST", &format!("/element/{e}/click"), None)
            .await
            .map(drop)
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub async fn script(&self, script: &str) -> Result<Value, String> {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// A screenshot of the window as PNG bytes.
    pub async fn screenshot(&self) -> Result<Vec<u8>, String> {
        use base64::Engine as _;
        let v = self.call("GET", "/screenshot", None).await?;
        let b64 = v.as_str().ok_or("no screenshot")?;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| e.to_string())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
