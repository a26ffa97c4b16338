//! An https target on loopback with certificates the tests make: without trusting it the run
//! stops at start with one message that says why and points at `--cacert` and `--insecure`;
//! `--cacert` trusts a private CA that signs the server's certificate, and a self-signed
//! certificate (`CA:TRUE`, as `openssl req -x509` makes it) that is the server's own, byte for
//! byte, while its name and dates are still checked.

use std::process::Command;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// A CA (PEM) and a TLS server for `localhost`/127.0.0.1 that answers every request 200.
async fn tls_target() -> (String, String) {
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("params");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("cert");
    (serve(cert.der().to_vec(), key).await, ca.pem())
}

/// A self-signed certificate for `names`, `CA:TRUE` or not, valid from `from` to `to`
/// (years), served as the server's own: the target and the certificate's PEM.
async fn self_signed_target(names: &[&str], ca: bool, from: i32, to: i32) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, names[0]);
    if ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    params.not_before = rcgen::date_time_ymd(from, 1, 1);
    params.not_after = rcgen::date_time_ymd(to, 1, 1);
    let cert = params.self_signed(&key).expect("cert");
    (serve(cert.der().to_vec(), key).await, cert.pem())
}

/// Serves `cert` over TLS on loopback, answering every request 200.
async fn serve(cert: Vec<u8>, key: rcgen::KeyPair) -> String {
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("server config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                loop {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
                        if tls.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    format!("https://localhost:{}", addr.port())
}

fn loadgen(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .args([
            "--food-rate",
            "20",
            "--clothing-rate",
            "0",
            "--duration",
            "1s",
        ])
        .args(["--no-progress", "--output", "json"])
        .output()
        .expect("run loadgen")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_one_clear_error_and_cacert_trusts_a_private_ca() {
    let (target, ca_pem) = tls_target().await;
    let out = tokio::task::spawn_blocking({
        let target = target.clone();
        move || loadgen(&["--target", &target])
    })
    .await
    .expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("not trusted")
            && stderr.contains("--insecure")
            && stderr.contains("--cacert"),
        "{stderr}"
    );
    assert!(!stderr.contains("failed to connect"), "{stderr}");

    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).expect("write ca");
    let ca = ca.display().to_string();
    let out = tokio::task::spawn_blocking(move || loadgen(&["--target", &target, "--cacert", &ca]))
        .await
        .expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    let ok = report["total"]["outcomes"]["2xx"].as_u64().unwrap_or(0);
    assert!(ok >= 10, "{report}");

    // A --cacert that holds no certificate is refused at start.
    let out = loadgen(&[
        "--target",
        "https://localhost:1",
        "--cacert",
        "/etc/hostname",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cacert"));
}

/// Runs loadgen against `target` trusting `pem` (`--cacert`): exit code, stderr, the 2xx count.
async fn run_trusting(target: &str, pem: Option<&str>) -> (Option<i32>, String, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("cert.pem");
    let mut args = vec!["--target".to_string(), target.to_string()];
    if let Some(pem) = pem {
        std::fs::write(&ca, pem).expect("write pem");
        args.extend(["--cacert".to_string(), ca.display().to_string()]);
    }
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        loadgen(&args)
    })
    .await
    .expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let ok = serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|r| r["total"]["outcomes"]["2xx"].as_u64())
        .unwrap_or(0);
    (out.status.code(), stderr, ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cacert_trusts_a_self_signed_certificate_that_is_the_servers_own() {
    // As `openssl req -x509 -subj /CN=localhost -addext subjectAltName=DNS:localhost` makes it.
    let (target, pem) = self_signed_target(&["localhost"], true, 2020, 2090).await;
    let (code, stderr, _) = run_trusting(&target, None).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("not trusted") && stderr.contains("--cacert FILE"),
        "{stderr}"
    );
    let (code, stderr, ok) = run_trusting(&target, Some(&pem)).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(ok >= 10, "{ok} orders answered 2xx\n{stderr}");
    // Not a CA (CA:FALSE) works the same way.
    let (target, pem) = self_signed_target(&["localhost"], false, 2020, 2090).await;
    let (code, stderr, ok) = run_trusting(&target, Some(&pem)).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(ok >= 10, "{ok} orders answered 2xx\n{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_certificate_still_needs_the_name_the_dates_and_the_same_bytes() {
    let cases = [
        (&["example.com"][..], 2020, 2090, "not valid for name"),
        (&["localhost"][..], 2001, 2002, "expired"),
        (&["localhost"][..], 2080, 2090, "not valid yet"),
    ];
    for (names, from, to, why) in cases {
        let (target, pem) = self_signed_target(names, true, from, to).await;
        let (code, stderr, _) = run_trusting(&target, Some(&pem)).await;
        assert_eq!(code, Some(2), "{names:?} {from}-{to}: {stderr}");
        assert!(stderr.contains(why), "{names:?} {from}-{to}: {stderr}");
    }
    // Another self-signed certificate for the same name, from the same file, is not it.
    let (target, _) = self_signed_target(&["localhost"], true, 2020, 2090).await;
    let (_, other) = self_signed_target(&["localhost"], true, 2020, 2090).await;
    let (code, stderr, _) = run_trusting(&target, Some(&other)).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("not trusted") && stderr.contains("neither this certificate nor a CA"),
        "{stderr}"
    );
}
