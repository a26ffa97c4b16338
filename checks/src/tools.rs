//! External tools the checks run (promtool, prometheus from the Debian package `prometheus`):
//! found on `PATH`; under `CI=true` a missing tool is a failure, elsewhere a loud skip.

use std::path::PathBuf;
use std::process::Command;

/// Finds `name` on `PATH`. Panics under `CI=true` when it is missing (CI installs it, so a
/// missing tool there is a broken set-up, never a pass); prints SKIPPED and returns `None`
/// elsewhere.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let hint = format!(
            "{name} not found: install the Debian package with `apt-get install -y prometheus` (scripts/test does it as root)"
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{hint} (required under CI)");
        }
        eprintln!("SKIPPED: {hint}");
    }
    found
}

/// Runs a command and returns its combined output, or the output as the error when it fails.
pub fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{cmd:?} failed ({}):\n{text}", out.status))
    }
}
