//! The files in `deploy/` an operator runs the service with (issue 12,
//! items 4 and 5), each checked by the real tool for its kind: hadolint for
//! the Dockerfile, kubernetes-validate (the Kubernetes API's schemas,
//! strict) for the manifests, promtool for the alert rules (check and unit
//! tests) and the dashboard's queries; and every metric they use is one a
//! running `cpor serve` exports. A missing tool is said (SKIPPED part) and
//! the rest still checked; `scripts/ensure-ops-tools` installs them.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::ops::{http_get, metric_names, root, service_with_admin, tool, traffic};
use crate::support::nats::free_port;
use crate::support::{assert_success, NatsServer};

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Runs a tool with `args` in `dir` to its end.
fn run(program: &Path, args: &[&str], dir: &Path) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()))
}

/// Runs a tool with `args` in `dir` and asserts that it passes.
fn passes(program: &Path, args: &[&str], dir: &Path) {
    let name = program.file_name().unwrap_or_default().to_string_lossy();
    let what = format!("{name} {}", args.join(" "));
    assert_success(&what, &run(program, args, dir));
}

/// The Kubernetes manifests, parsed.
fn manifest(name: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&read(&format!("deploy/k8s/{name}"))).expect("YAML")
}

/// Core kinds against the API's schemas, strict (an unknown field fails);
/// the PodMonitor, a CRD the validator has no schema for, against the
/// StatefulSet it scrapes.
#[test]
fn the_kubernetes_manifests_validate() {
    let statefulset = manifest("statefulset.yaml");
    let pod = &statefulset["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    assert_eq!(
        statefulset["spec"]["replicas"], 1,
        "one writer per data dir"
    );
    assert_eq!(container["ports"][0]["name"], "admin");
    assert_eq!(container["ports"][0]["containerPort"], 9464);
    let env = container["env"].as_sequence().expect("env");
    assert!(env
        .iter()
        .any(|v| v["name"] == "CPOR_HTTP_ADDR" && v["value"] == "0.0.0.0:9464"));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let podmonitor = manifest("podmonitor.yaml");
    assert_eq!(podmonitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(podmonitor["kind"], "PodMonitor");
    assert_eq!(
        podmonitor["spec"]["selector"]["matchLabels"],
        pod["metadata"]["labels"]
    );
    assert_eq!(
        podmonitor["spec"]["podMetricsEndpoints"][0]["port"],
        "admin"
    );
    assert_eq!(
        podmonitor["spec"]["podMetricsEndpoints"][0]["path"],
        "/metrics"
    );

    let Some(validate) = tool("kubernetes-validate") else {
        return;
    };
    let dir = root().join("deploy/k8s");
    let core = [
        "configmap.yaml",
        "secret.yaml",
        "service.yaml",
        "statefulset.yaml",
    ];
    passes(&validate, &[&["--strict"], &core[..]].concat(), &dir);
    // The validator does reject: an unknown field in a copy fails.
    let bad = tempfile::tempdir().unwrap();
    let text =
        read("deploy/k8s/statefulset.yaml").replace("  replicas: 1", "  replicas: 1\n  replica: 1");
    std::fs::write(bad.path().join("statefulset.yaml"), text).unwrap();
    let output = run(&validate, &["--strict", "statefulset.yaml"], bad.path());
    assert!(
        !output.status.success(),
        "an unknown field passed kubernetes-validate --strict"
    );
}

/// hadolint passes the Dockerfile, and its HEALTHCHECK command, run as
/// written against a live service's admin port, succeeds (and fails on a
/// port where nothing listens).
#[tokio::test(flavor = "multi_thread")]
async fn the_dockerfile_lints_and_its_healthcheck_probes_the_service() {
    let dockerfile = read("deploy/Dockerfile");
    let check = dockerfile
        .lines()
        .skip_while(|line| !line.starts_with("HEALTHCHECK"))
        .find_map(|line| line.trim().strip_prefix("CMD "))
        .expect("a HEALTHCHECK CMD line");
    let argv: Vec<String> = serde_json::from_str(check).expect("CMD in JSON form");
    assert_eq!(argv[0], "bash");
    let (_service, addr) = service_with_admin(&NatsServer::shared_or_own()).await;
    let port: u16 = addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("a port");
    let probe = |port: u16| {
        let script = argv[2].replace("/9464", &format!("/{port}"));
        // Quiet: the failing probe's "Connection refused" is expected,
        // not something for the test run's reader.
        Command::new("bash")
            .args(["-c", &script])
            .stderr(std::process::Stdio::null())
            .status()
            .expect("bash")
    };
    assert!(tokio::task::block_in_place(|| probe(port)).success());
    assert!(!tokio::task::block_in_place(|| probe(free_port())).success());

    let Some(hadolint) = tool("hadolint") else {
        return;
    };
    passes(&hadolint, &["deploy/Dockerfile"], &root());
}

/// Every query of the dashboard, with Grafana's variables filled in.
fn dashboard_queries() -> Vec<String> {
    let dashboard: Value =
        serde_json::from_str(&read("deploy/grafana/cpor-dashboard.json")).expect("JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut queries = Vec::new();
    for panel in panels {
        assert!(panel["gridPos"].is_object(), "{panel}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(
            !targets.is_empty(),
            "a panel without a query: {}",
            panel["title"]
        );
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            queries.push(
                expr.replace("$__rate_interval", "5m")
                    .replace("$instance", ".*"),
            );
        }
    }
    queries
}

/// `promtool check rules` and `promtool test rules` pass the alert rules,
/// and every dashboard query parses as PromQL (as recording rules).
#[test]
fn the_alert_rules_and_dashboard_queries_pass_promtool() {
    let queries = dashboard_queries();
    assert!(queries.len() >= 10, "{queries:?}");
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let dir = root().join("deploy/prometheus");
    passes(&promtool, &["check", "rules", "cpor-alerts.yml"], &dir);
    passes(&promtool, &["test", "rules", "cpor-alerts.test.yml"], &dir);
    let rules: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(i, expr)| serde_json::json!({"record": format!("cpor:dashboard_query_{i}"), "expr": expr}))
        .collect();
    let file = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    let temp = tempfile::tempdir().unwrap();
    // JSON is YAML: promtool reads it as a rules file.
    std::fs::write(temp.path().join("dashboard.yml"), file.to_string()).unwrap();
    passes(&promtool, &["check", "rules", "dashboard.yml"], temp.path());
}

/// The `cpor_…` (and `process_…`) metric names in `text`, histogram series
/// suffixes left on.
fn used_metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    for start in 0..bytes.len() {
        let rest = &text[start..];
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if boundary && (rest.starts_with("cpor_") || rest.starts_with("process_")) {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    names
}

/// Every metric the dashboard and the alert rules use is one a running
/// service exports (a histogram's `_bucket`/`_sum`/`_count` series
/// included), so neither can silently show nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_and_alerts_use_only_exported_metrics() {
    let (service, addr) = service_with_admin(&NatsServer::shared_or_own()).await;
    // A command, so that the writer's histograms have samples.
    traffic(&service).await;
    let (status, scrape) = http_get(&addr, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    let mut exported = BTreeSet::new();
    for name in metric_names(&scrape) {
        for suffix in ["", "_bucket", "_sum", "_count"] {
            exported.insert(format!("{name}{suffix}"));
        }
    }
    for file in [
        "deploy/grafana/cpor-dashboard.json",
        "deploy/prometheus/cpor-alerts.yml",
    ] {
        let used = used_metric_names(&read(file));
        assert!(used.len() >= 5, "{file}: {used:?}");
        let unknown: Vec<&String> = used
            .iter()
            .filter(|name| !exported.contains(*name))
            .collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics the service does not export: {unknown:?}"
        );
    }
    // The checker reads names right.
    assert_eq!(
        used_metric_names("rate(cpor_a_total[5m]) + xcpor_b + process_start_time_seconds"),
        BTreeSet::from([
            "cpor_a_total".to_string(),
            "process_start_time_seconds".to_string()
        ])
    );
}
