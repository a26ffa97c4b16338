//! The command line as a report shows it: the arguments as given, with the values of flags that
//! carry credentials replaced, so a report can be shared without leaking a token or a header.

/// Flags whose values carry credentials.
const SECRET_FLAGS: [&str; 2] = ["--header", "--admin-token"];

/// The command line as a report shows it: the values of `--header` (after the header's name)
/// and `--admin-token` replaced by `<redacted>`, whichever way they are written.
pub fn redacted(args: impl IntoIterator<Item = std::ffi::OsString>) -> Vec<String> {
    let hide = |flag: &str, value: &str| match (flag, value.split_once(':')) {
        ("--header", Some((name, _))) => format!("{name}: <redacted>"),
        _ => "<redacted>".to_string(),
    };
    let mut out = Vec::new();
    let mut secret_next: Option<&str> = None;
    for arg in args {
        let arg = arg.to_string_lossy().into_owned();
        if let Some(flag) = secret_next.take() {
            out.push(hide(flag, &arg));
            continue;
        }
        match arg.split_once('=') {
            Some((flag, value)) if SECRET_FLAGS.contains(&flag) => {
                out.push(format!("{flag}={}", hide(flag, value)));
            }
            _ => {
                secret_next = SECRET_FLAGS.iter().copied().find(|f| *f == arg);
                out.push(arg);
            }
        }
    }
    out
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
    }
}
