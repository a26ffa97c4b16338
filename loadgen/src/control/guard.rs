//! Who may change a running load through the control API: a change (any method but GET and
//! HEAD) must carry the bearer token when one is set, compared in constant time; no request
//! may come from another site's page (a form content type, a cross-site `Origin` or
//! `Sec-Fetch-Site`), since a browser sends those without asking; and without a token the
//! `Host` must be a loopback name, so a page that rebinds its own DNS name to 127.0.0.1
//! cannot reach the API either. There are no cookies or sessions to steal.

use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, ORIGIN};
use hyper::{HeaderMap, Method, StatusCode};
use subtle::ConstantTimeEq;

/// A refusal: the status and the message the answer carries.
pub type Refusal = (StatusCode, &'static str);

/// Checks a request's method and headers; `Ok` when it may go on.
pub fn check(method: &Method, headers: &HeaderMap, token: Option<&str>) -> Result<(), Refusal> {
    if token.is_none() && !loopback_host(headers) {
        return Err((
            StatusCode::FORBIDDEN,
            "the Host header must name this machine (localhost, 127.0.0.1 or [::1]) when no --control-token is set",
        ));
    }
    if cross_site(headers) {
        return Err((
            StatusCode::FORBIDDEN,
            "requests from another site's page are refused",
        ));
    }
    if matches!(*method, Method::GET | Method::HEAD) {
        return Ok(());
    }
    if let Some(ct) = headers.get(CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or("").trim();
        if essence != "application/json" {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "changes take a JSON body: Content-Type: application/json",
            ));
        }
    }
    if let Some(token) = token {
        // The scheme is case-insensitive (RFC 9110); the token is compared in constant time,
        // so how long the comparison takes says nothing about it.
        let given = headers.get(AUTHORIZATION).map(|v| v.as_bytes());
        let matches = given.is_some_and(|g| {
            g.len() > 7
                && g[..7].eq_ignore_ascii_case(b"bearer ")
                && bool::from(g[7..].ct_eq(token.as_bytes()))
        });
        if !matches {
            return Err((
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token (Authorization: Bearer TOKEN, the --control-token)",
            ));
        }
    }
    Ok(())
}

/// Whether the request comes from another origin's page: its `Origin` names another host
/// than the one it was sent to, or the browser says so in `Sec-Fetch-Site`.
fn cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return true;
        }
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return false;
    };
    let origin = origin.to_str().unwrap_or("");
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let bare = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    bare != Some(host) || host.is_empty()
}

/// Whether the `Host` header names the local machine.
fn loopback_host(headers: &HeaderMap) -> bool {
    // Exactly one Host: with two, which one counts depends on who reads it.
    let mut all = headers.get_all(HOST).iter();
    let (Some(host), None) = (all.next(), all.next()) else {
        return false;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, rest)) if rest.is_empty() || rest.starts_with(':') => addr,
            _ => return false,
        },
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header value"));
        }
        h
    }

    #[test]
    fn changes_need_the_token_and_a_json_body_from_this_site() {
        let host = ("host", "127.0.0.1:8089");
        let ok = [
            host,
            ("authorization", "Bearer t0k"),
            ("content-type", "application/json"),
        ];
        type Case<'a> = (
            &'a str,
            Method,
            Vec<(&'static str, &'a str)>,
            Option<&'a str>,
            Option<u16>,
        );
        let cases: Vec<Case> = vec![
            (
                "a read needs no token",
                Method::GET,
                vec![host],
                Some("t0k"),
                None,
            ),
            (
                "a change with the token",
                Method::PUT,
                ok.to_vec(),
                Some("t0k"),
                None,
            ),
            (
                "no token",
                Method::PUT,
                vec![host, ("content-type", "application/json")],
                Some("t0k"),
                Some(401),
            ),
            (
                "a wrong token",
                Method::POST,
                vec![host, ("authorization", "Bearer t0x")],
                Some("t0k"),
                Some(401),
            ),
            (
                "a form",
                Method::POST,
                vec![
                    host,
                    ("authorization", "Bearer t0k"),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                Some("t0k"),
                Some(415),
            ),
            (
                "multipart",
                Method::POST,
                vec![host, ("content-type", "multipart/form-data; boundary=x")],
                None,
                Some(415),
            ),
            (
                "text/plain",
                Method::POST,
                vec![host, ("content-type", "text/plain")],
                None,
                Some(415),
            ),
            (
                "another site's page",
                Method::POST,
                vec![host, ("origin", "http://evil.example")],
                None,
                Some(403),
            ),
            (
                "another site's page, reading",
                Method::GET,
                vec![host, ("origin", "http://evil.example")],
                None,
                Some(403),
            ),
            (
                "this site's page",
                Method::POST,
                vec![
                    host,
                    ("origin", "http://127.0.0.1:8089"),
                    ("content-type", "application/json"),
                ],
                None,
                None,
            ),
            (
                "the browser says cross-site",
                Method::DELETE,
                vec![host, ("sec-fetch-site", "cross-site")],
                None,
                Some(403),
            ),
            (
                "a rebound DNS name without a token",
                Method::GET,
                vec![("host", "evil.example:8089")],
                None,
                Some(403),
            ),
            (
                "any name with a token",
                Method::GET,
                vec![("host", "loadgen:8089")],
                Some("t0k"),
                None,
            ),
            (
                "localhost and ::1",
                Method::GET,
                vec![("host", "[::1]:8089")],
                None,
                None,
            ),
            (
                "an unclosed IPv6 literal",
                Method::GET,
                vec![("host", "[::1")],
                None,
                Some(403),
            ),
            (
                "the scheme in lower case",
                Method::PUT,
                vec![host, ("authorization", "bearer t0k")],
                Some("t0k"),
                None,
            ),
            (
                "a token that only starts right",
                Method::PUT,
                vec![host, ("authorization", "Bearer t0kk")],
                Some("t0k"),
                Some(401),
            ),
        ];
        for (name, method, h, token, want) in cases {
            let got = check(&method, &headers(&h), token)
                .err()
                .map(|(s, _)| s.as_u16());
            assert_eq!(got, want, "{name}");
        }
        // Two Host headers: refused, whichever a reader would take.
        let mut two = headers(&[("host", "127.0.0.1:8089")]);
        two.append(HOST, "evil.example".parse().expect("header value"));
        assert!(check(&Method::GET, &two, None).is_err());
    }
}
