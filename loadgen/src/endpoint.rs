//! The target as the command line gives it: a base URL (http or https, a host, no
//! credentials, query or fragment, ending in `/`), a check that its host resolves before the
//! run, and the extra request headers (`NAME:VALUE`). Errors name the flag at fault and echo
//! the input capped, a URL without its `user:password@` and a header without its value.

use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Url;

use crate::redact::{quoted, without_credentials};

/// The input each error holds is already as it may be shown: a URL without its credentials,
/// a header without its value, both capped.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("--target {0}: {1}")]
    Target(String, String),
    #[error("--header {0}: {1}")]
    Header(String, String),
}

/// A URL as an error shows it.
fn shown_url(url: &str) -> String {
    quoted(&without_credentials(url))
}

/// A header as an error shows it: its name, never its value (it may be a token).
fn shown_header(raw: &str) -> String {
    match raw.split_once(':') {
        Some((name, _)) => format!("{}: <value hidden>", quoted(name.trim())),
        None => format!("({} bytes, no colon)", raw.len()),
    }
}

/// Parses a base URL, requiring http(s) and a host, and making sure it ends with `/`.
pub fn parse_base(target: &str) -> Result<Url, EndpointError> {
    let err = |m: &str| EndpointError::Target(shown_url(target), m.into());
    let mut url = Url::parse(target).map_err(|e| err(&format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(err("scheme must be http or https"));
    }
    if url.host().is_none() {
        return Err(err("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(err(
            "user:password@ in the URL is not sent; pass --header \"Authorization: Basic <base64 of user:password>\" instead",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err("give a base URL without ?query or #fragment"));
    }
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    Ok(url)
}

/// Resolves the target's host once before the run, so a name that does not resolve is one
/// clear error at start-up instead of thousands of connect errors.
pub async fn resolve(target: &str) -> Result<(), EndpointError> {
    let url = parse_base(target)?;
    let Some(host) = url.domain().map(str::to_owned) else {
        return Ok(()); // an IP address: nothing to resolve
    };
    let port = url.port_or_known_default().unwrap_or(80);
    let found = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map(|addrs| addrs.count());
    match found {
        Ok(n) if n > 0 => Ok(()),
        Ok(_) => Err(EndpointError::Target(
            shown_url(target),
            format!("host {} resolves to no address", quoted(&host)),
        )),
        Err(e) => Err(EndpointError::Target(
            shown_url(target),
            format!("cannot resolve host {}: {e}", quoted(&host)),
        )),
    }
}

/// One `--header NAME:VALUE`, checked.
pub fn parse_header(raw: &str) -> Result<(String, String), EndpointError> {
    let err = |m: &str| EndpointError::Header(shown_header(raw), m.into());
    let (k, v) = raw
        .split_once(':')
        .ok_or_else(|| err("expected NAME:VALUE"))?;
    let (k, v) = (k.trim(), v.trim());
    HeaderName::from_bytes(k.as_bytes()).map_err(|_| err("invalid header name"))?;
    HeaderValue::from_str(v).map_err(|_| err("invalid header value"))?;
    Ok((k.to_string(), v.to_string()))
}

/// One header as a typed name and value.
pub fn header_pair(k: &str, v: &str) -> Result<(HeaderName, HeaderValue), EndpointError> {
    let name = HeaderName::from_bytes(k.as_bytes())
        .map_err(|_| EndpointError::Header(quoted(k), "invalid header name".into()))?;
    let value = HeaderValue::from_str(v)
        .map_err(|_| EndpointError::Header(quoted(k), "invalid header value".into()))?;
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_normalised_and_checked() {
        assert_eq!(
            parse_base("http://svc:5001").expect("ok").as_str(),
            "http://svc:5001/"
        );
        assert_eq!(
            parse_base("https://h/shop")
                .expect("ok")
                .join("makeFoodOrder")
                .expect("join")
                .as_str(),
            "https://h/shop/makeFoodOrder"
        );
        for bad in [
            "svc:5001",
            "ftp://h/",
            "http://",
            "http://h/?a=1",
            "not a url",
        ] {
            let e = parse_base(bad).expect_err(bad).to_string();
            assert!(e.contains("--target"), "{bad}: {e}");
        }
    }

    #[test]
    fn errors_echo_no_password_no_header_value_and_no_flood() {
        for bad in [
            "http://user:PASSWORD@h/",
            "ftp://user:PASSWORD@h/",
            "http://user:PASS/WORD@h/",
            "http://user:PASSWORD@h/?q=1",
        ] {
            let e = parse_base(bad).expect_err(bad).to_string();
            assert!(
                e.contains("--target") && e.contains("<redacted>@h"),
                "{bad}: {e}"
            );
            assert!(!e.contains("PASS"), "{bad}: {e}");
        }
        for bad in ["Authorization: Bearer SECRET\u{1}", "Bearer SECRET"] {
            let e = parse_header(bad).expect_err(bad).to_string();
            assert!(
                e.contains("--header") && !e.contains("SECRET"),
                "{bad}: {e}"
            );
        }
        let flood = format!("http://h/?{}", "q".repeat(100_000));
        let e = parse_base(&flood).expect_err("query").to_string();
        assert!(e.len() < 500 && e.contains("(100010 bytes)"), "{e}");
    }

    #[test]
    fn headers_are_validated() {
        assert_eq!(
            parse_header("Authorization: Bearer x:y").expect("ok"),
            ("Authorization".into(), "Bearer x:y".into())
        );
        assert!(parse_header("no-colon").is_err());
        assert!(parse_header("bad name: v").is_err());
        assert!(parse_header("X: a\nb").is_err());
    }
}
