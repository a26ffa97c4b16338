//! The two READMEs: the Chinese one keeps up with the English one (same sections, the same
//! commands, every identifier the English one names), and the files they link exist.

use std::collections::BTreeSet;

use order_metrics_checks::repo_root;

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn headings(text: &str) -> Vec<usize> {
    text.lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| l.chars().take_while(|c| *c == '#').count())
        .collect()
}

/// Commands in the fenced shell blocks, without their comments.
fn commands(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut inside = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            inside = t == "```sh";
            continue;
        }
        if inside {
            let cmd = t.split(" # ").next().unwrap_or_default().trim();
            let cmd = cmd.strip_prefix('#').map_or(cmd, |_| "");
            if !cmd.is_empty() {
                out.insert(cmd.to_string());
            }
        }
    }
    out
}

/// Everything in backticks outside code blocks.
fn identifiers(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut inside = false;
    for line in text.lines() {
        if line.trim().starts_with("```") {
            inside = !inside;
            continue;
        }
        if inside {
            continue;
        }
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 1 && !part.is_empty() {
                out.insert(part.to_string());
            }
        }
    }
    out
}

#[test]
fn the_chinese_readme_matches_the_english_one() {
    let en = read("README.md");
    let zh = read("README.zh-CN.md");
    assert!(en.contains("(README.zh-CN.md)") && zh.contains("(README.md)"));
    assert_eq!(headings(&en), headings(&zh), "section structure differs");
    let en_cmds = commands(&en);
    let zh_cmds = commands(&zh);
    assert!(en_cmds.len() >= 15, "{en_cmds:?}");
    let missing: Vec<_> = en_cmds.difference(&zh_cmds).collect();
    assert!(
        missing.is_empty(),
        "commands missing from README.zh-CN.md: {missing:#?}"
    );
    let zh_ids = identifiers(&zh);
    let missing: Vec<_> = identifiers(&en)
        .into_iter()
        .filter(|id| !zh_ids.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "README.zh-CN.md does not mention: {missing:#?}"
    );
}

#[test]
fn files_the_readmes_link_exist() {
    for doc in ["README.md", "README.zh-CN.md", "RUNBOOK.md"] {
        let text = read(doc);
        for part in text.split("](").skip(1) {
            let target = part.split(')').next().unwrap_or_default();
            if target.starts_with("http") || target.starts_with('#') || target.is_empty() {
                continue;
            }
            let path = target.split('#').next().unwrap_or_default();
            assert!(
                repo_root().join(path).exists(),
                "{doc} links {target}, which does not exist"
            );
        }
    }
}

/// Every repository path the READMEs name in backticks (outside code blocks) exists: a path
/// is a token whose first segment is a top-level entry of the repository (`target/` aside,
/// which the build makes), without wildcards.
#[test]
fn paths_the_readmes_name_exist() {
    let top: BTreeSet<String> = std::fs::read_dir(repo_root())
        .expect("repo root")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "target")
        .collect();
    for doc in ["README.md", "README.zh-CN.md"] {
        let mut named = 0;
        for id in identifiers(&read(doc)) {
            let Some((first, _)) = id.split_once('/') else {
                continue;
            };
            if id.contains([' ', '*', '{', '<', '$']) || !top.contains(first) {
                continue;
            }
            named += 1;
            assert!(
                repo_root().join(&id).exists(),
                "{doc} names {id}, which does not exist"
            );
        }
        assert!(named > 20, "{doc}: only {named} paths found");
    }
}

/// Provisioning into your own Grafana: the READMEs name both provisioning files by their
/// real paths, and say to change the data source's URL, which is compose's host name.
#[test]
fn the_readmes_say_what_provisioning_needs_changed() {
    let datasource = "deploy/grafana/provisioning/datasources/prometheus.yml";
    let text = read(datasource);
    let url = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("url: "))
        .expect("the data source's url");
    assert_eq!(url, "http://prometheus:9090", "compose's host name");
    let provider = "deploy/grafana/provisioning/dashboards/order-metrics.yml";
    let path = read(provider)
        .lines()
        .find_map(|l| l.trim().strip_prefix("path: ").map(str::to_string))
        .expect("the provider's path");
    for doc in ["README.md", "README.zh-CN.md"] {
        let ids = identifiers(&read(doc));
        for must in [datasource, provider, url, path.as_str(), "url", "path"] {
            assert!(ids.contains(must), "{doc} does not name `{must}`");
        }
    }
}
