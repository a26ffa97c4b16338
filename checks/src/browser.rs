//! Headless Chromium (Debian's `chromium`), run the way this machine allows: no sandbox (root),
//! no GPU, no background networking (the closed network refuses it), a fresh profile per call,
//! and a time limit, so a page that hangs the browser fails the test instead of the suite.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::tool;

/// How long one page may take.
const LIMIT: Duration = Duration::from_secs(90);

#[derive(Debug)]
pub struct Chromium {
    binary: PathBuf,
}

impl Chromium {
    /// Chromium on `PATH`; `None` (or a panic under CI) when it is not installed.
    pub fn find() -> Option<Self> {
        tool("chromium").map(|binary| Chromium { binary })
    }

    /// The page's DOM after it loaded and its scripts ran, as Chromium serializes it.
    pub fn dump_dom(&self, page: &Path) -> Result<String, String> {
        self.run(page, &["--dump-dom"])
    }

    /// A screenshot of the page, `width` by `height` CSS pixels, into `png`.
    pub fn screenshot(
        &self,
        page: &Path,
        png: &Path,
        width: u32,
        height: u32,
    ) -> Result<(), String> {
        let shot = format!("--screenshot={}", png.display());
        let size = format!("--window-size={width},{height}");
        self.run(page, &[&shot, &size, "--hide-scrollbars"])?;
        match std::fs::metadata(png) {
            Ok(m) if m.len() > 0 => Ok(()),
            _ => Err(format!("chromium wrote no screenshot to {}", png.display())),
        }
    }

    fn run(&self, page: &Path, extra: &[&str]) -> Result<String, String> {
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let page = std::fs::canonicalize(page).map_err(|e| format!("{}: {e}", page.display()))?;
        let mut child = Command::new(&self.binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(format!("file://{}", page.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", self.binary.display()))?;
        let mut stdout = child.stdout.take().ok_or("no stdout")?;
        let reader = std::thread::spawn(move || {
            let mut out = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
            out
        });
        let started = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
                break s;
            }
            if started.elapsed() > LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "chromium took over {LIMIT:?} on {}",
                    page.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let out = reader
            .join()
            .map_err(|_| "reading chromium's output failed")?;
        if !status.success() {
            return Err(format!(
                "chromium exited with {status} on {}",
                page.display()
            ));
        }
        Ok(out)
    }
}
