//! The shipping files: the Dockerfile, the compose stack, the Kubernetes manifests, the
//! Alertmanager config and the Kubernetes copy of the rules, each checked by the real tool
//! for its format (check-jsonschema's compose-spec schema, kubernetes-validate, amtool,
//! promtool) and against each other: the same binaries, ports, paths and rules everywhere.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use order_metrics_checks::repo_root;
use order_metrics_checks::rules::{self, PROMETHEUS_RULE_PATH};
use order_metrics_checks::tools::{run, tool};
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml_docs(rel: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A compose service's key, looking through a `<<: *anchor` merge (which yaml-rust2 leaves
/// as a plain key).
fn key<'a>(service: &'a Yaml, k: &str) -> &'a Yaml {
    let direct = &service[k];
    if direct.is_badvalue() {
        &service["<<"][k]
    } else {
        direct
    }
}

fn compose() -> Yaml {
    yaml_docs("docker-compose.yml").remove(0)
}

fn dotenv() -> Vec<(String, String)> {
    read(".env")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn prometheus_rule_manifest_carries_the_rule_files() {
    let root = repo_root();
    let generated = rules::prometheus_rule_manifest(&root).expect("generate");
    let path = root.join(PROMETHEUS_RULE_PATH);
    if std::env::var_os("REGENERATE").is_some() {
        std::fs::write(&path, &generated).expect("write");
    }
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        shipped == generated,
        "{PROMETHEUS_RULE_PATH} differs from deploy/prometheus/rules; regenerate it with\n  REGENERATE=1 cargo test -p order-metrics-checks --test deploy"
    );

    // Structurally the same groups, and promtool accepts each object's spec as a rule file.
    let docs = YamlLoader::load_from_str(&shipped).expect("manifest YAML");
    let files = rules::rule_files(&root).expect("rule files");
    assert_eq!(docs.len(), files.len());
    let promtool = tool("promtool");
    let dir = tempfile::tempdir().expect("tempdir");
    for (doc, file) in docs.iter().zip(&files) {
        assert_eq!(doc["kind"].as_str(), Some("PrometheusRule"));
        assert_eq!(
            doc["metadata"]["labels"]["role"].as_str(),
            Some("operator-prometheus")
        );
        let original = YamlLoader::load_from_str(&std::fs::read_to_string(file).expect("read"))
            .expect("rule YAML")
            .remove(0);
        assert_eq!(doc["spec"], original, "{}", file.display());
        let mut text = String::new();
        YamlEmitter::new(&mut text)
            .dump(&doc["spec"])
            .expect("emit");
        let spec_file = dir.path().join(file.file_name().expect("name"));
        std::fs::write(&spec_file, text).expect("write spec");
        if let Some(promtool) = &promtool {
            let out = run(Command::new(promtool)
                .args(["check", "rules"])
                .arg(&spec_file))
            .unwrap_or_else(|e| panic!("{e}"));
            assert!(out.contains("SUCCESS"), "{out}");
        }
    }
}

#[test]
#[cfg_attr(
    missing_check_jsonschema,
    ignore = "check-jsonschema not on PATH: python3 -m pip install check-jsonschema==0.39.0"
)]
fn compose_file_follows_the_compose_spec_and_its_mounts_exist() {
    let Some(checker) = tool("check-jsonschema") else {
        return;
    };
    let root = repo_root();
    run(Command::new(&checker)
        .args(["--builtin-schema", "vendor.compose-spec"])
        .arg(root.join("docker-compose.yml")))
    .unwrap_or_else(|e| panic!("{e}"));

    // The check can fail: an unknown service key is rejected.
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("compose.yml");
    std::fs::write(
        &broken,
        read("docker-compose.yml").replacen(
            "    restart: unless-stopped",
            "    restrat: unless-stopped",
            1,
        ),
    )
    .expect("write");
    assert!(
        run(Command::new(&checker)
            .args(["--builtin-schema", "vendor.compose-spec"])
            .arg(&broken))
        .is_err(),
        "check-jsonschema accepted a misspelt key"
    );

    let c = compose();
    let services = c["services"].as_hash().expect("services");
    let names: BTreeSet<&str> = services.keys().filter_map(Yaml::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "order-server",
            "loadgen",
            "prometheus",
            "alertmanager",
            "grafana"
        ])
    );
    let env = dotenv();
    for (name, s) in services {
        let name = name.as_str().unwrap_or_default();
        for v in s["volumes"].as_vec().into_iter().flatten() {
            let v = v.as_str().unwrap_or_default();
            let source = v.split(':').next().unwrap_or_default();
            if source.starts_with("./") {
                assert!(
                    root.join(source).exists(),
                    "{name}: mounts {source}, which does not exist"
                );
                assert!(v.ends_with(":ro"), "{name}: {v} should be read-only");
            }
        }
        assert!(
            s["healthcheck"]["test"].is_array(),
            "{name}: no healthcheck"
        );
        assert_eq!(
            s["restart"].as_str(),
            Some("unless-stopped"),
            "{name}: restart"
        );
        assert!(
            s["deploy"]["resources"]["limits"]["memory"]
                .as_str()
                .is_some(),
            "{name}: no memory limit"
        );
        for (dep, cond) in s["depends_on"].as_hash().into_iter().flatten() {
            assert_eq!(
                cond["condition"].as_str(),
                Some("service_healthy"),
                "{name} -> {dep:?}"
            );
        }
        for p in s["ports"].as_vec().into_iter().flatten() {
            assert!(
                p.as_str().unwrap_or_default().starts_with("127.0.0.1:"),
                "{name}: port {p:?} is published beyond this machine"
            );
        }
        // Images come from .env, pinned.
        let image = s["image"].as_str().unwrap_or_default();
        let var = image
            .strip_prefix("${")
            .and_then(|v| v.strip_suffix('}'))
            .unwrap_or_else(|| panic!("{name}: image {image:?} is not set from .env"));
        let tag = env
            .iter()
            .find(|(k, _)| k == var)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{name}: {var} is not in .env"));
        let version = tag.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
        assert!(
            !version.is_empty() && version != "latest",
            "{name}: {tag} is not pinned"
        );
    }
    // Our two containers: non-root, read-only root filesystem, no capabilities.
    for name in ["order-server", "loadgen"] {
        let s = &c["services"][name];
        assert_eq!(key(s, "read_only").as_bool(), Some(true), "{name}");
        assert_eq!(key(s, "user").as_str(), Some("65532:65532"), "{name}");
        assert_eq!(key(s, "cap_drop")[0].as_str(), Some("ALL"), "{name}");
    }
    // Grafana: anonymous viewers, the admin password from the environment.
    let g = &c["services"]["grafana"]["environment"];
    assert_eq!(g["GF_AUTH_ANONYMOUS_ORG_ROLE"].as_str(), Some("Viewer"));
    assert!(g["GF_SECURITY_ADMIN_PASSWORD"]
        .as_str()
        .is_some_and(|v| v.starts_with("${GRAFANA_ADMIN_PASSWORD")));
    assert!(!read(".env").contains("PASSWORD="), ".env holds a password");
    let home = g["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        .as_str()
        .expect("home dashboard");
    let file = home
        .strip_prefix("/var/lib/grafana/dashboards/")
        .expect("home dashboard from the mounted dashboards");
    assert!(root.join("dashboards").join(file).is_file(), "{home}");
}

/// The Dockerfile's instructions as `KEYWORD args` lines, continuation lines joined.
fn dockerfile() -> Vec<String> {
    order_metrics_checks::docker::parse(&read("Dockerfile"))
        .into_iter()
        .map(|i| format!("{} {}", i.keyword, i.args))
        .collect()
}

/// Compose's `${VAR:-default}` and `${VAR}` in `text`, from `env`.
fn interpolate(text: &str, env: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let end = rest[at..].find('}').expect("closed ${") + at;
        let inner = &rest[at + 2..end];
        let (name, default) = inner.split_once(":-").unwrap_or((inner, ""));
        let set = env.iter().find(|(k, v)| *k == name && !v.is_empty());
        out.push_str(set.map_or(default, |(_, v)| v));
        rest = &rest[end + 1..];
    }
    out + rest
}

/// The commit in `order_service_build_info` under compose: compose passes the shell's
/// ORDER_SERVER_COMMIT as the build argument the Dockerfile turns into the build's
/// environment (the rehearsal in image.rs shows that argument reaching the metric), and
/// without it the argument is empty, which the server leaves out (server/tests/promises.rs),
/// never a made-up "unknown".
#[test]
fn compose_passes_the_commit_to_the_image_build() {
    let compose = compose();
    let args = &compose["services"]["order-server"]["build"]["args"];
    let arg = args["ORDER_SERVER_COMMIT"]
        .as_str()
        .expect("compose passes ORDER_SERVER_COMMIT to the build");
    assert_eq!(
        interpolate(arg, &[("ORDER_SERVER_COMMIT", "0123abcd4567")]),
        "0123abcd4567"
    );
    assert_eq!(interpolate(arg, &[]), "");
    let lines = dockerfile();
    let declared = lines
        .iter()
        .position(|l| l.starts_with("ARG ORDER_SERVER_COMMIT"))
        .expect("the Dockerfile takes ORDER_SERVER_COMMIT");
    assert_eq!(
        lines[declared], "ARG ORDER_SERVER_COMMIT=",
        "no made-up default"
    );
    let env = lines
        .iter()
        .position(|l| l == "ENV ORDER_SERVER_COMMIT=${ORDER_SERVER_COMMIT}")
        .expect("the build sees it");
    let build = lines
        .iter()
        .position(|l| l.starts_with("RUN") && l.contains("cargo build"))
        .expect("cargo build");
    assert!(declared < env && env < build, "{lines:#?}");
}

fn port_of(addr: &str) -> &str {
    addr.rsplit(':').next().unwrap_or_default()
}

#[test]
fn dockerfile_compose_and_manifests_agree_on_binaries_and_ports() {
    let lines = dockerfile();
    let find =
        |prefix: &str| -> Vec<&String> { lines.iter().filter(|l| l.starts_with(prefix)).collect() };
    // Pinned base images.
    for arg in find("ARG ") {
        if let Some((_, image)) = arg.split_once("_IMAGE=") {
            let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
            assert!(!tag.is_empty() && tag != "latest", "{arg}: not pinned");
        }
    }
    assert_eq!(find("EXPOSE").len(), 1);
    assert_eq!(find("EXPOSE")[0].as_str(), "EXPOSE 5001");
    let user = find("USER");
    assert_eq!(user.len(), 1);
    assert!(
        !user[0].contains("root") && !user[0].starts_with("USER 0"),
        "{}",
        user[0]
    );
    assert!(find("HEALTHCHECK")[0].contains("\"/usr/local/bin/order-server\", \"healthcheck\""));
    assert!(find("ENTRYPOINT")[0].contains("/usr/local/bin/order-server"));
    // What the build stage makes and the final stage copies is proven by the rehearsal
    // (tests/image.rs); here only that the binaries land where compose and Kubernetes look.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("COPY --from=build ") && l.ends_with(" /usr/local/bin/")),
        "the binaries go to /usr/local/bin"
    );
    let ignore = read(".dockerignore");
    for p in ["target/", ".git/"] {
        assert!(ignore.lines().any(|l| l == p), ".dockerignore lacks {p}");
    }

    // Compose: the same binaries and ports.
    let c = compose();
    let server = &c["services"]["order-server"];
    assert_eq!(server["ports"][0].as_str(), Some("127.0.0.1:5001:5001"));
    assert_eq!(
        server["healthcheck"]["test"][1].as_str(),
        Some("/usr/local/bin/order-server")
    );
    let lg = &c["services"]["loadgen"];
    assert_eq!(lg["entrypoint"][0].as_str(), Some("/usr/local/bin/loadgen"));
    // The live control API: on the compose network, published on this machine only, with
    // a token from the shell or the documented demo one (the binary refuses a non-loopback
    // address without a token); .env names the variable but holds no secret.
    let control = lg["environment"]["LOADGEN_CONTROL_ADDR"]
        .as_str()
        .expect("live control on");
    assert_eq!(
        lg["ports"]
            .as_vec()
            .map(|p| p.iter().filter_map(|p| p.as_str()).collect::<Vec<_>>()),
        Some(vec![format!("127.0.0.1:{0}:{0}", port_of(control)).as_str()])
    );
    let token = lg["environment"]["LOADGEN_CONTROL_TOKEN"]
        .as_str()
        .unwrap_or_default();
    assert!(
        token
            .strip_prefix("${LOADGEN_CONTROL_TOKEN:-")
            .is_some_and(|d| d.len() > 1 && d.ends_with('}')),
        "the token comes from the shell, with a demo default: {token}"
    );
    assert!(
        read(".env").contains("LOADGEN_CONTROL_TOKEN"),
        ".env says where the control token comes from"
    );
    let lg_metrics = lg["environment"]["LOADGEN_METRICS_ADDR"]
        .as_str()
        .expect("loadgen metrics on");
    assert_eq!(
        lg["environment"]["LOADGEN_TARGET"].as_str(),
        Some("http://order-server:5001")
    );
    let admin = server["environment"]["ORDER_SERVER_ADMIN_LISTEN"]
        .as_str()
        .expect("fault API for drills");
    assert_eq!(
        lg["environment"]["LOADGEN_ADMIN_URL"]
            .as_str()
            .map(String::from),
        Some(format!("http://order-server:{}", port_of(admin)))
    );
    // Prometheus scrapes those ports.
    let prom = read("deploy/prometheus/prometheus.yml");
    assert!(prom.contains("\"order-server:5001\""));
    assert!(prom.contains(&format!("\"loadgen:{}\"", port_of(lg_metrics))));

    // Kubernetes: the same binaries and ports.
    let server_pod = &yaml_docs("deploy/k8s/order-server.yaml")[0]["spec"]["template"];
    let ctr = &server_pod["spec"]["containers"][0];
    assert_eq!(ctr["image"].as_str(), Some("order-metrics"));
    assert_eq!(ctr["ports"][0]["containerPort"].as_i64(), Some(5001));
    assert_eq!(
        server_pod["metadata"]["annotations"]["prometheus.io/port"].as_str(),
        Some("5001")
    );
    for file in [
        "deploy/k8s/loadgen.yaml",
        "deploy/k8s/jobs/loadgen-job.yaml",
    ] {
        let pod = &yaml_docs(file)[0]["spec"]["template"];
        let ctr = &pod["spec"]["containers"][0];
        assert_eq!(
            ctr["command"][0].as_str(),
            Some("/usr/local/bin/loadgen"),
            "{file}"
        );
        assert_eq!(
            ctr["ports"][0]["containerPort"].as_i64(),
            Some(9464),
            "{file}"
        );
        assert_eq!(
            pod["metadata"]["annotations"]["prometheus.io/port"].as_str(),
            Some(port_of(lg_metrics)),
            "{file}"
        );
    }
}

fn manifests() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "yaml")
                && p.file_name().is_some_and(|n| n != "kustomization.yaml")
            {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo_root().join("deploy/k8s"), &mut out);
    out.sort();
    out
}

#[test]
#[cfg_attr(
    missing_kubernetes_validate,
    ignore = "kubernetes-validate not on PATH: python3 -m pip install kubernetes-validate==1.37.0"
)]
fn manifests_pass_kubernetes_validate_strict_on_old_and_new_clusters() {
    let Some(validate) = tool("kubernetes-validate") else {
        return;
    };
    let files = manifests();
    assert!(files.len() >= 6, "{files:?}");
    // 1.28: the oldest CCE version still offered; 1.37: the newest schemas bundled.
    for version in ["1.28.0", "1.37.0"] {
        let out = run(Command::new(&validate)
            .args(["--strict", "--kubernetes-version", version])
            .args(&files))
        .unwrap_or_else(|e| panic!("{e}"));
        for f in &files {
            let name = f.file_name().expect("name").to_string_lossy().to_string();
            assert!(out.contains(&name), "{name} not validated:\n{out}");
        }
    }
    // The check can fail: a misspelt field is rejected.
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        read("deploy/k8s/order-server.yaml").replacen("replicas: 2", "replicaz: 2", 1),
    )
    .expect("write");
    assert!(
        run(Command::new(&validate).arg("--strict").arg(&broken)).is_err(),
        "kubernetes-validate accepted a misspelt field"
    );
}

#[test]
fn kustomizations_list_every_manifest_and_nothing_missing() {
    let root = repo_root();
    let mut listed = BTreeSet::new();
    for dir in [
        "deploy/k8s",
        "deploy/k8s/monitoring",
        "deploy/k8s/jobs",
        "deploy/k8s/rules",
        "deploy/k8s/kube-prometheus-stack",
    ] {
        let k = &yaml_docs(&format!("{dir}/kustomization.yaml"))[0];
        for r in k["resources"].as_vec().expect("resources") {
            let p = root.join(dir).join(r.as_str().expect("path"));
            // A resource is a manifest, or a directory with its own kustomization (a base).
            assert!(
                p.is_file() || p.join("kustomization.yaml").is_file(),
                "{dir}: {} does not exist",
                p.display()
            );
            listed.insert(p);
        }
        if k["images"].is_array() {
            assert_eq!(k["images"][0]["name"].as_str(), Some("order-metrics"));
        }
    }
    for m in manifests() {
        assert!(
            listed.contains(&m),
            "{} is in no kustomization",
            m.display()
        );
    }
}

#[test]
fn the_order_server_deployment_follows_the_guide_and_is_hardened() {
    let docs = yaml_docs("deploy/k8s/order-server.yaml");
    let pod = &docs[0]["spec"]["template"];
    let a = &pod["metadata"]["annotations"];
    assert_eq!(a["prometheus.io/scrape"].as_str(), Some("true"));
    assert_eq!(a["prometheus.io/path"].as_str(), Some("/metrics"));
    assert_eq!(a["prometheus.io/scheme"].as_str(), Some("http"));
    let spec = &pod["spec"];
    assert_eq!(
        spec["imagePullSecrets"][0]["name"].as_str(),
        Some("default-secret")
    );
    let c = &spec["containers"][0];
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    let env_ms = |name: &str| {
        c["env"]
            .as_vec()
            .into_iter()
            .flatten()
            .find(|e| e["name"].as_str() == Some(name))
            .and_then(|e| e["value"].as_str())
            .and_then(rules::parse_duration)
            .unwrap_or_else(|| panic!("{name} set"))
    };
    let drain = env_ms("ORDER_SERVER_DRAIN_TIMEOUT");
    // A rolling update's late connections are served while endpoints catch up.
    let delay = env_ms("ORDER_SERVER_SHUTDOWN_DELAY");
    assert!((3000..=15_000).contains(&delay), "shutdown delay {delay}ms");
    let grace = spec["terminationGracePeriodSeconds"]
        .as_i64()
        .expect("grace") as u64;
    assert!(
        grace * 1000 > delay + drain + 5000,
        "grace {grace}s vs shutdown delay {delay}ms + drain {drain}ms"
    );
    assert_eq!(
        spec["topologySpreadConstraints"][0]["topologyKey"].as_str(),
        Some("kubernetes.io/hostname")
    );
    // Voluntary disruptions keep a replica: a PodDisruptionBudget over the same pods.
    let pdb = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("PodDisruptionBudget"))
        .expect("a PodDisruptionBudget for the order server");
    assert_eq!(pdb["spec"]["minAvailable"].as_i64(), Some(1));
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        docs[0]["spec"]["selector"]["matchLabels"]
    );
    for docs in [
        docs.clone(),
        yaml_docs("deploy/k8s/loadgen.yaml"),
        yaml_docs("deploy/k8s/jobs/loadgen-job.yaml"),
    ] {
        let spec = &docs[0]["spec"]["template"]["spec"];
        assert_eq!(
            spec["securityContext"]["runAsNonRoot"].as_bool(),
            Some(true)
        );
        let sc = &spec["containers"][0]["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
        assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
        let r = &spec["containers"][0]["resources"];
        assert!(
            r["requests"]["cpu"].as_str().is_some() && r["limits"]["memory"].as_str().is_some()
        );
    }
    // The Service reaches the container port by name.
    assert_eq!(
        docs[1]["spec"]["ports"][0]["targetPort"].as_str(),
        Some("http")
    );

    // The PodMonitors select these pods, by ports they have, and name the job as the rules expect.
    let monitors = yaml_docs("deploy/k8s/monitoring/podmonitor.yaml");
    for (m, file, job) in [
        (&monitors[0], "deploy/k8s/order-server.yaml", "order-server"),
        (&monitors[1], "deploy/k8s/loadgen.yaml", "loadgen"),
    ] {
        let pod = &yaml_docs(file)[0]["spec"]["template"];
        let label = m["spec"]["jobLabel"].as_str().expect("jobLabel");
        assert_eq!(pod["metadata"]["labels"][label].as_str(), Some(job));
        for (k, v) in m["spec"]["selector"]["matchLabels"]
            .as_hash()
            .expect("selector")
        {
            assert_eq!(&pod["metadata"]["labels"][k.as_str().expect("key")], v);
        }
        let port = m["spec"]["podMetricsEndpoints"][0]["port"]
            .as_str()
            .expect("port");
        assert_eq!(
            pod["spec"]["containers"][0]["ports"][0]["name"].as_str(),
            Some(port)
        );
    }
}

#[test]
fn the_loadgen_job_splits_the_rate_by_completion_index() {
    let job = &yaml_docs("deploy/k8s/jobs/loadgen-job.yaml")[0];
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    let n = spec["parallelism"].as_i64().expect("parallelism");
    assert_eq!(spec["completions"].as_i64(), Some(n));
    let args: Vec<String> = spec["template"]["spec"]["containers"][0]["args"]
        .as_vec()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect();
    assert!(
        args.contains(&format!("--shard=$(JOB_COMPLETION_INDEX)/{n}")),
        "{args:?}"
    );
    // Every pod gets the Job's uid as its run id, so merge takes their reports as one run's
    // (the Job controller labels its pods with it, Kubernetes 1.27 and later).
    let env = spec["template"]["spec"]["containers"][0]["env"]
        .as_vec()
        .expect("env");
    let run_id = env
        .iter()
        .find(|e| e["name"].as_str() == Some("LOADGEN_RUN_ID"))
        .expect("LOADGEN_RUN_ID");
    assert_eq!(
        run_id["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("metadata.labels['batch.kubernetes.io/controller-uid']")
    );
    // Every shard's command line is one the load generator accepts.
    for i in 0..n {
        let argv = std::iter::once("loadgen".to_string()).chain(
            args.iter()
                .map(|a| a.replace("$(JOB_COMPLETION_INDEX)", &i.to_string())),
        );
        let cli = loadgen::Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("shard {i}: {e}"));
        let mut cli = cli;
        // What the downward API gives: the Job's uid.
        cli.run_id.run_id = Some("5f1c2a9e-1d2b-4c3d-8e9f-0a1b2c3d4e5f".into());
        let cfg = cli
            .into_config()
            .unwrap_or_else(|e| panic!("shard {i}: {e}"));
        assert!(cfg.run_id.is_some());
    }
}

#[test]
#[cfg_attr(
    missing_amtool,
    ignore = "amtool not in target/tools/bin: run bash scripts/tools"
)]
fn alertmanager_config_is_valid_and_routes_by_severity() {
    let Some(amtool) = tool("amtool") else {
        return;
    };
    let config = repo_root().join("deploy/alertmanager/alertmanager.yml");
    let out = run(Command::new(&amtool).arg("check-config").arg(&config))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("SUCCESS"), "{out}");
    for (labels, receiver) in [
        (
            ["severity=critical", "alertname=OrderServiceErrorBudgetBurn"],
            "page",
        ),
        (
            ["severity=warning", "alertname=OrderServiceErrorBudgetBurn"],
            "ticket",
        ),
    ] {
        let out = run(Command::new(&amtool)
            .args(["config", "routes", "test"])
            .arg(format!("--config.file={}", config.display()))
            .args(labels))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            out.lines().next().map(str::trim),
            Some(receiver),
            "{labels:?}: {out}"
        );
    }
    // Every severity the rules use has a route.
    let severities: BTreeSet<String> = rules::load_all(&repo_root())
        .expect("rules")
        .into_iter()
        .filter_map(|r| r.labels.get("severity").cloned())
        .collect();
    assert_eq!(
        severities,
        BTreeSet::from(["critical".into(), "warning".into()])
    );
}
