//! Every kustomization under `deploy/k8s`, built by the real kustomize (Debian's 5.8, the
//! engine `kubectl apply -k` embeds), and what each build must contain: the image from the
//! SWR repository, the rules in the namespace and with the labels their Prometheus selects
//! (the CCE add-on's `role: operator-prometheus` in `monitoring`; kube-prometheus-stack's
//! `release` label), and selectors left alone.

use std::path::Path;
use std::process::Command;

use order_metrics_checks::repo_root;
use order_metrics_checks::tools::{run, tool};
use yaml_rust2::{Yaml, YamlLoader};

fn build(kustomize: &Path, dir: &str) -> Vec<Yaml> {
    let out = run(Command::new(kustomize)
        .arg("build")
        .arg(repo_root().join(dir)))
    .unwrap_or_else(|e| panic!("kustomize build {dir}: {e}"));
    YamlLoader::load_from_str(&out).unwrap_or_else(|e| panic!("{dir}: {e}\n{out}"))
}

fn of_kind<'a>(docs: &'a [Yaml], kind: &str) -> Vec<&'a Yaml> {
    docs.iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect()
}

fn label<'a>(doc: &'a Yaml, key: &str) -> Option<&'a str> {
    doc["metadata"]["labels"][key].as_str()
}

#[test]
#[cfg_attr(
    missing_kustomize,
    ignore = "kustomize not in target/tools/bin: run bash scripts/tools"
)]
fn every_kustomization_builds_into_what_its_prometheus_selects() {
    let Some(kustomize) = tool("kustomize") else {
        return;
    };

    // The service: every container runs the SWR image, every object in the demo namespace.
    let app = build(&kustomize, "deploy/k8s");
    assert!(app.len() >= 5, "{} objects", app.len());
    for d in &app {
        let kind = d["kind"].as_str().unwrap_or_default();
        if kind != "Namespace" {
            assert_eq!(
                d["metadata"]["namespace"].as_str(),
                Some("aom-custom-metrics-demo"),
                "{kind}"
            );
        }
        for c in d["spec"]["template"]["spec"]["containers"]
            .as_vec()
            .into_iter()
            .flatten()
        {
            let image = c["image"].as_str().unwrap_or_default();
            assert!(
                image.starts_with("swr.") && image.contains(".myhuaweicloud.com/"),
                "{kind}: image {image} is not the SWR repository"
            );
        }
    }
    let jobs = build(&kustomize, "deploy/k8s/jobs");
    assert_eq!(of_kind(&jobs, "Job").len(), 1);

    // The CCE add-on: rules in `monitoring` with `role: operator-prometheus`, alone (beside
    // the pods' annotations) or with the PodMonitors.
    let rules_only = build(&kustomize, "deploy/k8s/rules");
    assert_eq!(rules_only.len(), 2);
    assert_eq!(of_kind(&rules_only, "PrometheusRule").len(), 2);
    let cce = build(&kustomize, "deploy/k8s/monitoring");
    let cce_rules = of_kind(&cce, "PrometheusRule");
    assert_eq!(cce_rules.len(), 2);
    for r in &cce_rules {
        assert_eq!(r["metadata"]["namespace"].as_str(), Some("monitoring"));
        assert_eq!(label(r, "role"), Some("operator-prometheus"));
    }
    assert_eq!(of_kind(&cce, "PodMonitor").len(), 2);

    // kube-prometheus-stack: the same monitors and rules, each labelled with the release,
    // next to the service; the pod selectors unchanged, so they still match the pods.
    let kps = build(&kustomize, "deploy/k8s/kube-prometheus-stack");
    assert_eq!(kps.len(), cce.len());
    for d in &kps {
        assert_eq!(
            label(d, "release"),
            Some("kube-prometheus-stack"),
            "{:?}",
            d["metadata"]
        );
        assert_eq!(
            d["metadata"]["namespace"].as_str(),
            Some("aom-custom-metrics-demo")
        );
    }
    for (a, b) in of_kind(&kps, "PodMonitor")
        .iter()
        .zip(of_kind(&cce, "PodMonitor"))
    {
        assert_eq!(a["spec"], b["spec"], "the PodMonitor spec changed");
        assert!(a["spec"]["selector"]["matchLabels"]["release"].is_badvalue());
    }
    for (a, b) in of_kind(&kps, "PrometheusRule").iter().zip(cce_rules) {
        assert_eq!(a["spec"], b["spec"], "the rules changed");
    }

    // The check can fail: a kustomization naming a resource that is not there does not build.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        "resources:\n  - missing.yaml\n",
    )
    .expect("write");
    assert!(
        run(Command::new(&kustomize).arg("build").arg(dir.path())).is_err(),
        "kustomize built a kustomization with a missing resource"
    );
}
