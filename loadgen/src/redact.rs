//! What the load generator echoes of its input: the command line as a report shows it (the
//! values of flags that carry credentials replaced, so a report can be shared without leaking a
//! token or a header), a target URL anywhere it is shown (errors, logs, reports, pages) with its
//! `user:password@` replaced, and any echoed input capped at [`SHOWN_CHARS`] characters followed
//! by `… (N bytes)`, so a 100 KB flag value cannot become 100 KB of error text.

use std::borrow::Cow;

use reqwest::Url;

/// Flags whose values carry credentials.
const SECRET_FLAGS: [&str; 3] = ["--header", "--admin-token", "--control-token"];

/// The command line as a report shows it: the values of `--header` (after the header's name)
/// and the tokens replaced by `<redacted>`, and the credentials in `--target` and `--admin-url`,
/// whichever way they are written.
pub fn redacted(args: impl IntoIterator<Item = std::ffi::OsString>) -> Vec<String> {
    let hide = |flag: &str, value: &str| match (flag, value.split_once(':')) {
        ("--header", Some((name, _))) => format!("{name}: <redacted>"),
        _ => "<redacted>".to_string(),
    };
    let mut out = Vec::new();
    let mut secret_next: Option<&str> = None;
    let mut url_next = false;
    for arg in args {
        let arg = arg.to_string_lossy().into_owned();
        if let Some(flag) = secret_next.take() {
            out.push(hide(flag, &arg));
            continue;
        }
        if std::mem::take(&mut url_next) {
            out.push(without_credentials(&arg).into_owned());
            continue;
        }
        match arg.split_once('=') {
            Some((flag, value)) if SECRET_FLAGS.contains(&flag) => {
                out.push(format!("{flag}={}", hide(flag, value)));
            }
            Some((flag, value)) if URL_FLAGS.contains(&flag) => {
                out.push(format!("{flag}={}", without_credentials(value)));
            }
            _ => {
                secret_next = SECRET_FLAGS.iter().copied().find(|f| *f == arg);
                url_next = URL_FLAGS.contains(&arg.as_str());
                out.push(arg);
            }
        }
    }
    out
}

/// Flags whose values are URLs, shown without their `user:password@`.
const URL_FLAGS: [&str; 2] = ["--target", "--admin-url"];

/// How many characters of one input a message shows.
pub const SHOWN_CHARS: usize = 200;

/// The most characters one printed error message shows (the last resort of [`bounded`]).
pub const MESSAGE_CHARS: usize = 4000;

/// `input` as a message shows it: whole up to [`SHOWN_CHARS`] characters, else its first
/// [`SHOWN_CHARS`] characters followed by `… (N bytes)`.
pub fn capped(input: &str) -> String {
    cap(input, SHOWN_CHARS)
}

fn cap(input: &str, chars: usize) -> String {
    match input.char_indices().nth(chars) {
        None => input.to_string(),
        Some((end, _)) => format!("{}… ({} bytes)", &input[..end], input.len()),
    }
}

/// `input` quoted as `{:?}` quotes it, [`capped`]: the size follows the quotes, `"xx…"… (N bytes)`.
pub fn quoted(input: &str) -> String {
    match input.char_indices().nth(SHOWN_CHARS) {
        None => format!("{input:?}"),
        Some((end, _)) => format!("{:?}… ({} bytes)", &input[..end], input.len()),
    }
}

/// A target URL as errors, logs, reports and pages show it: `user:password@` replaced by
/// `<redacted>@`, then [`capped`]. Text that is not a URL is redacted too, up to its last `@`.
pub fn target(url: &str) -> String {
    capped(&without_credentials(url))
}

/// `url` without the credentials in it (see [`target`]), not capped.
pub fn without_credentials(url: &str) -> Cow<'_, str> {
    // Only a URL with a host has its credentials where the parser finds them
    // (`user:pw@host:5001` parses as scheme `user` and a path).
    if let Some(parsed) = Url::parse(url).ok().filter(Url::has_host) {
        if parsed.username().is_empty() && parsed.password().is_none() {
            return Cow::Borrowed(url);
        }
        let mut bare = parsed.clone();
        if bare.set_username("").is_ok() && bare.set_password(None).is_ok() {
            let text = bare.as_str();
            let after = text.find("://").map_or(0, |i| i + 3);
            return Cow::Owned(format!("{}<redacted>@{}", &text[..after], &text[after..]));
        }
    }
    // Not a URL (or one whose credentials cannot be cleared): everything between the scheme
    // and the last `@` may be a password, whatever characters it holds.
    let after = url.find("://").map_or(0, |i| i + 3);
    match url[after..].rfind('@') {
        Some(at) => Cow::Owned(format!("{}<redacted>{}", &url[..after], &url[after + at..])),
        None => Cow::Borrowed(url),
    }
}

/// A whole message as printed, the net under [`capped`]: any run of more than twice
/// [`SHOWN_CHARS`] characters without a space is capped to [`SHOWN_CHARS`], and the message to
/// [`MESSAGE_CHARS`].
pub fn bounded(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MESSAGE_CHARS + 64));
    for piece in message.split_inclusive(char::is_whitespace) {
        let word = piece.trim_end_matches(char::is_whitespace);
        if word.chars().nth(2 * SHOWN_CHARS).is_some() {
            out.push_str(&capped(word));
            out.push_str(&piece[word.len()..]);
        } else {
            out.push_str(piece);
        }
    }
    cap(&out, MESSAGE_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_name_the_command_line_without_its_secrets() {
        let args = [
            "loadgen",
            "--header",
            "Authorization: Bearer s3cret",
            "--header=X-Key:k3y",
            "--admin-token",
            "t0ken",
            "--admin-token=t0ken2",
            "--food-rate",
            "5",
            "--header",
        ];
        let shown = redacted(args.iter().map(std::ffi::OsString::from));
        assert_eq!(
            shown,
            [
                "loadgen",
                "--header",
                "Authorization: <redacted>",
                "--header=X-Key: <redacted>",
                "--admin-token",
                "<redacted>",
                "--admin-token=<redacted>",
                "--food-rate",
                "5",
                "--header",
            ]
        );
        assert!(!shown.concat().contains("s3cret") && !shown.concat().contains("t0ken"));
        let shown = redacted(
            [
                "--target",
                "http://u:pw1@h/",
                "--admin-url=https://a:pw2@h:9/x",
                "--target=http://h/",
            ]
            .iter()
            .map(std::ffi::OsString::from),
        );
        assert_eq!(
            shown,
            [
                "--target",
                "http://<redacted>@h/",
                "--admin-url=https://<redacted>@h:9/x",
                "--target=http://h/"
            ]
        );
    }

    #[test]
    fn credentials_in_urls_are_hidden_parsed_or_not() {
        for (url, shown) in [
            (
                "http://user:PASSWORD@host:5001/shop",
                "http://<redacted>@host:5001/shop",
            ),
            ("https://user@host/", "https://<redacted>@host/"),
            ("http://u:p@ss@host/", "http://<redacted>@host/"),
            ("ftp://user:PASSWORD@host/", "ftp://<redacted>@host/"),
            ("http://user:PA/SS@host/", "http://<redacted>@host/"),
            ("user:PASSWORD@host:5001", "<redacted>@host:5001"),
            ("http://host:5001/", "http://host:5001/"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(target(url), shown, "{url}");
        }
    }

    #[test]
    fn long_input_is_capped_with_its_size() {
        assert_eq!(capped("short"), "short");
        assert_eq!(quoted("a\"b"), "\"a\\\"b\"");
        assert_eq!(
            quoted(&"y".repeat(201)),
            format!("{:?}… (201 bytes)", "y".repeat(200))
        );
        let exact = "é".repeat(SHOWN_CHARS);
        assert_eq!(capped(&exact), exact);
        let long = "x".repeat(100_000);
        assert_eq!(
            capped(&long),
            format!("{}… (100000 bytes)", "x".repeat(SHOWN_CHARS))
        );
        let wide = "é".repeat(300);
        assert_eq!(
            capped(&wide),
            format!("{}… (600 bytes)", "é".repeat(SHOWN_CHARS))
        );
        // The net: long runs capped, spaces kept, the whole bounded; capped text stays as it is.
        let msg = format!("error: --x {long:?}: bad");
        let net = bounded(&msg);
        assert!(
            net.starts_with("error: --x \"xxx") && net.ends_with("(100003 bytes) bad"),
            "{net}"
        );
        assert_eq!(bounded(&capped(&long)), capped(&long));
        let spaced = "ab ".repeat(50_000);
        assert!(bounded(&spaced).chars().count() < MESSAGE_CHARS + 30);
    }
}
