//! What the shipped configuration lets in: the fault API is off by default and never on a
//! published port, the containers run as non-root with read-only root filesystems (checked
//! in tests/deploy.rs), and no secret is committed or baked into the image.

use std::path::{Path, PathBuf};

use clap::Parser;
use order_metrics_checks::docker::{self, IgnoreRules};
use order_metrics_checks::repo_root;

/// Every file in the repository except build output and git's own.
fn repo_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read dir").flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if name == "target" || name == ".git" {
                continue;
            }
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo_root(), &mut out);
    out
}

/// A private key, an AWS access key id, or a password/secret/token given a literal value.
/// Values from the environment (`${...}`) and placeholders (`<...>`) are fine.
fn looks_secret(line: &str) -> bool {
    let lower = line.to_lowercase();
    let key_block = line.contains("-----BEGIN") && line.contains("PRIVATE KEY");
    let aws = line.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| {
        w.len() == 20
            && w.starts_with("AKIA")
            && w.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    });
    let literal = ["password", "passwd", "secret", "token", "api_key", "apikey"]
        .iter()
        .any(|k| {
            lower.split_once(k).is_some_and(|(_, rest)| {
                let rest = rest.trim_start_matches(['"', '\'', '_', '-']).trim_start();
                let Some(v) = rest.strip_prefix(':').or_else(|| rest.strip_prefix('=')) else {
                    return false;
                };
                let v = v.trim().trim_matches(['"', '\'']);
                v.len() >= 8
                    && !v.starts_with("${")
                    && !v.starts_with('<')
                    && !v.contains(' ')
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+/=_-".contains(c))
            })
        });
    key_block || aws || literal
}

#[test]
fn the_scanner_catches_secrets_and_passes_references() {
    for bad in [
        "  password: hunter2hunter2",
        "ADMIN_TOKEN=s3cr3tv4lu3xyz",
        "api_key = \"abcdef0123456789\"",
        "-----BEGIN RSA PRIVATE KEY-----",
        "aws_access_key_id AKIAIOSFODNN7EXAMPLE",
    ] {
        assert!(looks_secret(bad), "{bad}");
    }
    for fine in [
        "GF_SECURITY_ADMIN_PASSWORD: ${GRAFANA_ADMIN_PASSWORD:-admin}",
        "--admin-token <token>",
        "/// If set, admin requests must carry `Authorization: Bearer <token>`.",
        "    pub admin_token: Option<String>,",
    ] {
        assert!(!looks_secret(fine), "{fine}");
    }
}

#[test]
fn no_secrets_are_committed() {
    let mut findings = Vec::new();
    for path in repo_files() {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // not text
        };
        let rel = path
            .strip_prefix(repo_root())
            .unwrap_or(&path)
            .display()
            .to_string();
        if rel == "checks/tests/security.rs" {
            continue; // the patterns themselves
        }
        for (n, line) in text.lines().enumerate() {
            if looks_secret(line) {
                findings.push(format!("{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        findings.is_empty(),
        "possible secrets:\n{}",
        findings.join("\n")
    );
}

#[test]
fn the_image_bakes_in_no_secrets_or_local_files() {
    let dockerfile = std::fs::read_to_string(repo_root().join("Dockerfile")).expect("Dockerfile");
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("ARG ") || l.starts_with("ENV "))
    {
        let upper = line.to_uppercase();
        for word in ["PASSWORD", "TOKEN", "SECRET", "KEY"] {
            assert!(!upper.contains(word), "Dockerfile: {line}");
        }
    }
    // The build stage copies the context, which .dockerignore bounds: local env files, keys
    // and the git history never enter it. The runtime image takes only the two binaries.
    let ignore = std::fs::read_to_string(repo_root().join(".dockerignore")).expect(".dockerignore");
    let rules = IgnoreRules::parse(&ignore).expect(".dockerignore parses");
    for p in [
        ".env",
        ".env.local",
        ".git/config",
        "target/release/order-server",
        "server/tls.key",
        "deploy/certs/ca.pem",
        "id_rsa",
    ] {
        assert!(
            rules.excludes(Path::new(p)),
            ".dockerignore lets {p} into the build"
        );
    }
    let instructions = docker::parse(&dockerfile);
    let runtime = instructions
        .iter()
        .rposition(|i| i.keyword == "FROM")
        .expect("a runtime stage");
    for copy in instructions[runtime..]
        .iter()
        .filter(|i| i.keyword == "COPY")
    {
        assert!(
            copy.args.starts_with("--from=build "),
            "the runtime image copies from outside the build stage: COPY {}",
            copy.args
        );
    }
}

#[test]
fn the_fault_api_is_off_by_default_and_never_published() {
    let cli = order_server::Cli::try_parse_from(["order-server"]).expect("defaults parse");
    assert!(
        cli.server.admin_listen.is_none(),
        "the fault API must be off unless asked for"
    );

    // Compose: on the internal network only, never in `ports`.
    let compose = std::fs::read_to_string(repo_root().join("docker-compose.yml")).expect("compose");
    let admin_port = compose
        .lines()
        .find_map(|l| l.trim().strip_prefix("ORDER_SERVER_ADMIN_LISTEN:"))
        .and_then(|v| v.trim().rsplit(':').next())
        .expect("compose turns the fault API on for drills")
        .to_string();
    assert!(
        !compose
            .lines()
            .any(|l| l.trim().starts_with("- \"") && l.contains(&format!(":{admin_port}\""))),
        "the fault API port {admin_port} is published"
    );
    // Kubernetes: off.
    for entry in std::fs::read_dir(repo_root().join("deploy/k8s"))
        .expect("k8s dir")
        .flatten()
    {
        if let Ok(text) = std::fs::read_to_string(entry.path()) {
            assert!(
                !text.contains("ORDER_SERVER_ADMIN_LISTEN") && !text.contains("--admin-listen"),
                "{}: the fault API is on in Kubernetes",
                entry.path().display()
            );
        }
    }
}
