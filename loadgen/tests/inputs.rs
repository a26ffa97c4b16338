//! Bad input to the load generator (flags, headers, scenario files) gets a message naming the
//! field and exit code 2, never a panic; and property tests show that no scenario text and no
//! command line makes the parsers panic.

use std::process::Command;

use clap::Parser;
use loadgen::scenario::Scenario;
use proptest::prelude::*;

fn loadgen(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .args(["--requests", "1", "--no-progress"])
        .output()
        .expect("run loadgen");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn bad_flags_name_the_flag_and_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["--food-rate", "-1"], "--food-rate"),
        (&["--food-rate", "lots"], "--food-rate"),
        (&["--clothing-rate", "1e12"], "--clothing-rate"),
        (&["--shard", "3/2"], "--shard"),
        (&["--header", "novalue"], "--header"),
        (&["--header", "bad name:v"], "--header"),
        (&["--timeout", "0s"], "--timeout"),
        (&["--timeout", "soon"], "--timeout"),
        (&["--max-in-flight", "0"], "--max-in-flight"),
        (&["--tick", "11ms"], "--tick must be at most 10ms"),
        (&["--tick", "often"], "--tick"),
        (&["--duration", "0s"], "--duration"),
        (&["--max-error-ratio", "2"], "--max-error-ratio"),
        (&["--max-p99", "fast"], "--max-p99"),
        (
            &["--threshold", "p99<250"],
            "--threshold \"p99<250\": limit \"250\"",
        ),
        (
            &["--threshold", "shoes.p99<1s"],
            "\"shoes\" is not an order type",
        ),
        (&["--threshold", "p99"], "no comparison"),
        (&["--arrivals", "sometimes"], "--arrivals"),
        (&["--shape", "ramp"], "--ramp-over"),
        (
            &["--shape", "sine", "--amplitude", "3", "--duration", "1s"],
            "--amplitude",
        ),
        (&["--shape", "daily", "--day-length", "1s"], "--day-length"),
        (&["--target", "ftp://x"], "--target"),
        (&["--target", "http://127.0.0.1:5001/?q=1"], "--target"),
        (&["--target", "not a url"], "--target"),
        (&["--scenario", "nosuch"], "--scenario"),
        (&["--metrics-addr", "nope"], "--metrics-addr"),
        (&["--seed", "-3"], "-3"),
        (&["--no-such-flag"], "--no-such-flag"),
    ];
    for (args, names) in cases {
        let (code, stderr) = loadgen(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(names),
            "{args:?} should name {names}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_refused_target_never_echoes_its_password() {
    for target in [
        "http://user:PASSWORD@127.0.0.1:1/",
        "ftp://user:PASSWORD@host/",
        "http://user:PASS/WORD@host/",
    ] {
        let (code, stderr) = loadgen(&["--target", target]);
        assert_eq!(code, Some(2), "{target}: {stderr}");
        assert!(stderr.contains("--target"), "{target}: {stderr}");
        assert!(stderr.contains("<redacted>@"), "{target}: {stderr}");
        assert!(!stderr.contains("PASS"), "{target}: {stderr}");
    }
    // The same for the fault API's URL.
    let (code, stderr) = loadgen(&["--admin-url", "http://admin:PASSWORD@127.0.0.1:1/"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(!stderr.contains("PASSWORD"), "{stderr}");
}

#[test]
fn a_flood_of_input_is_echoed_capped_with_its_size() {
    let big = "x".repeat(100_000);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--threshold".into(), format!("p99<250{big}")],
            "--threshold",
        ),
        (
            vec!["--threshold".into(), format!("p99{big}")],
            "--threshold",
        ),
        (
            vec!["--threshold".into(), format!("{big} < 1")],
            "--threshold",
        ),
        (vec!["--food-rate".into(), big.clone()], "--food-rate"),
        (vec!["--duration".into(), format!("1{big}")], "--duration"),
        (vec!["--shard".into(), format!("{big}/2")], "--shard"),
        (vec![format!("--{big}")], "unexpected argument"),
        (
            vec!["--target".into(), format!("http://h/?{big}")],
            "--target",
        ),
        (vec!["--scenario".into(), big.clone()], "--scenario"),
        (vec!["--header".into(), format!("{big}: v")], "--header"),
        (vec!["--log".into(), format!("={big}")], "--log"),
        (
            vec!["--cacert".into(), format!("/nonexistent/{big}")],
            "--cacert",
        ),
        (vec!["--max-p99".into(), big.clone()], "--max-p99"),
    ];
    for (args, names) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stderr) = loadgen(&args);
        let shown = &stderr[..stderr.len().min(600)];
        assert_eq!(code, Some(2), "{}: {shown}", &args[0]);
        assert!(stderr.contains(names), "{}: {shown}", &args[0]);
        assert!(
            stderr.len() < 1_500,
            "{}: {} bytes: {shown}",
            &args[0],
            stderr.len()
        );
        assert!(stderr.contains(" bytes)"), "{}: {shown}", &args[0]);
        assert!(!stderr.contains("panicked"), "{}: {shown}", &args[0]);
    }
    // A flood in a password or a header's value is not echoed at all.
    let (code, stderr) = loadgen(&["--target", &format!("http://u:{big}@h/")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.len() < 500 && stderr.contains("<redacted>@h"),
        "{stderr}"
    );
    let (code, stderr) = loadgen(&["--header", &format!("X-A: {big}\u{1}x")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.len() < 500 && stderr.contains("<value hidden>"),
        "{stderr}"
    );
    // The cap is 200 characters and says how long the input was.
    let (_, stderr) = loadgen(&["--threshold", &format!("p99<1s{big}")]);
    assert!(
        stderr.contains(&format!("\"p99<1s{}\"… (100006 bytes)", &big[..194])),
        "{stderr}"
    );
}

#[test]
fn bad_scenario_files_name_the_field_and_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: &[(&str, &str)] = &[
        ("name = \"x\"\n[[phase]\n", "TOML parse error"),
        ("name = \"x\"\n", "no [[phase]]"),
        ("[[phase]]\nduration = \"1m\"\nfood_rat = 5\nclothing_rate = 1\n", "unknown key \"food_rat\""),
        ("[[phase]]\nduration = \"1m\"\nclothing_rate = 1\n", "food_rate is required"),
        ("[[phase]]\nduration = \"1m\"\nfood_rate = -5\nclothing_rate = 1\n", "food_rate"),
        ("[[phase]]\nduration = \"soon\"\nfood_rate = 5\nclothing_rate = 1\n", "duration"),
        ("[[phase]]\nduration = \"0s\"\nfood_rate = 5\nclothing_rate = 1\n", "duration"),
        ("[[phase]]\nfood_rate = 5\nclothing_rate = 1\n[[phase]]\nduration = \"1m\"\nfood_rate = 5\nclothing_rate = 1\n", "duration is required"),
        ("[[phase]]\nduration = \"1m\"\nfood_rate = 5\nclothing_rate = 1\nshape = \"sine\"\namplitude = 7\n", "amplitude"),
        ("[[phase]]\nduration = \"1m\"\nfood_rate = 5\nclothing_rate = 1\nshape = \"zigzag\"\n", "zigzag"),
        ("[[phase]]\nduration = \"1m\"\nfood_rate = 5\nclothing_rate = 1\n[[phase.fault]]\nkind = \"explode\"\n", "fault 1: kind"),
        ("[[phase]]\nduration = \"1m\"\nfood_rate = 5\nclothing_rate = 1\n[[phase.fault]]\nkind = \"errors\"\n", "fault 1: error_rate"),
        ("[[phase]]\nduration = \"1m\"\nfood_rate = 5\nclothing_rate = 1\n[[phase.fault]]\nkind = \"stall\"\norder_type = \"shoes\"\n", "order_type"),
        ("[[phase]]\nduration = \"1m\"\nfood_rate = 5\nclothing_rate = 1\n[[phase.fault]]\nkind = \"stall\"\ncolour = \"red\"\n", "colour"),
        ("arrivals = \"bursty\"\n[[phase]]\nduration = \"1m\"\nfood_rate = 5\nclothing_rate = 1\n", "arrivals"),
    ];
    for (i, (text, names)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("case{i}.toml"));
        std::fs::write(&path, text).expect("write");
        let (code, stderr) = loadgen(&["--scenario", path.to_str().expect("utf-8 path")]);
        assert_eq!(code, Some(2), "{text}: {stderr}");
        assert!(
            stderr.contains(names),
            "{text:?} should name {names}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{text}: {stderr}");
    }
}

/// A phase table built from known keys with values of any type and range.
fn phase_toml() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "name",
        "duration",
        "food_rate",
        "clothing_rate",
        "shape",
        "ramp_from",
        "ramp_over",
        "steps",
        "step_every",
        "period",
        "amplitude",
        "day_length",
        "start_hour",
        "flash_sale_every",
        "flash_sale_duration",
        "flash_sale_factor",
        "bogus",
    ]);
    let value = prop_oneof![
        any::<f64>()
            .prop_filter("finite TOML float", |v| v.is_finite())
            .prop_map(|v| format!("{v:?}")),
        any::<i64>().prop_map(|v| v.to_string()),
        prop::sample::select(vec![
            "\"1m\"",
            "\"0s\"",
            "\"1ms\"",
            "\"100000h\"",
            "\"soon\"",
            "\"constant\"",
            "\"ramp\"",
            "\"steps\"",
            "\"sine\"",
            "\"daily\"",
            "\"\"",
            "true",
            "[]",
            "nan",
            "inf",
            "-inf",
        ])
        .prop_map(String::from),
    ];
    prop::collection::vec((key, value), 0..8).prop_map(|kv| {
        let mut seen = std::collections::BTreeSet::new();
        let mut t = String::from("[[phase]]\n");
        for (k, v) in kv {
            if seen.insert(k) {
                t.push_str(&format!("{k} = {v}\n"));
            }
        }
        t
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn no_text_makes_the_scenario_parser_panic(text in "\\PC{0,400}") {
        let _ = Scenario::parse("prop", &text, 1);
    }

    #[test]
    fn no_phase_table_makes_the_scenario_parser_panic(phases in prop::collection::vec(phase_toml(), 1..4), seed in any::<u64>()) {
        let text = phases.join("\n");
        if let Ok(s) = Scenario::parse("prop", &text, seed) {
            // Whatever is accepted is a usable plan: finite, non-negative rates throughout.
            for t in [0.0, 0.5, 1.0, 59.0, 3600.0, 86_400.0] {
                for ty in order_server::contract::OrderType::ALL {
                    let r = s.plan.rate(t, ty);
                    prop_assert!(r.is_finite() && r >= 0.0, "rate {r} at {t} for {text}");
                }
            }
        }
    }

    #[test]
    fn no_command_line_makes_the_flag_parser_panic(
        args in prop::collection::vec(
            prop_oneof![
                prop::sample::select(vec![
                    "--food-rate", "--clothing-rate", "--shape", "--duration", "--requests",
                    "--shard", "--header", "--timeout", "--max-in-flight", "--ramp-over",
                    "--steps", "--step-every", "--period", "--amplitude", "--day-length",
                    "--flash-sale-every", "--flash-sale-factor", "--max-p99", "--target",
                ]).prop_map(String::from),
                "[ -~]{0,12}",
                any::<f64>().prop_map(|v| v.to_string()),
            ],
            0..10,
        )
    ) {
        let argv = std::iter::once("loadgen".to_string()).chain(args);
        if let Ok(cli) = loadgen::Cli::try_parse_from(argv) {
            let _ = cli.into_config();
        }
    }
}
