//! External tools the checks run (promtool and prometheus, amtool, check-jsonschema,
//! kubernetes-validate): found on `PATH`; under `CI=true` a missing tool is a failure,
//! elsewhere a loud skip that says how to install it. `scripts/test` installs them all.

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
            "{name} not found: install it with `{}` (scripts/test does it)",
            install_hint(name)
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{hint} (required under CI)");
        }
        eprintln!("SKIPPED: {hint}");
    }
    found
}

fn install_hint(name: &str) -> &'static str {
    match name {
        "promtool" | "prometheus" => "apt-get install -y prometheus",
        "amtool" => "apt-get install -y prometheus-alertmanager",
        "check-jsonschema" => "python3 -m pip install check-jsonschema==0.39.0",
        "kubernetes-validate" => "python3 -m pip install kubernetes-validate==1.37.0",
        _ => "your package manager",
    }
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
