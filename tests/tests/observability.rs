//! The dashboard and the alert rules in deploy/observability/ use only metrics the services
//! export: a renamed metric fails here, not silently on an operator's screen.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use pipeline_tests::{call, TestEnv};

/// The sample names a scrape can hold, from its `# TYPE` lines: a family with no sample yet
/// (a counter by reason before its first failure) is exported all the same.
fn exported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split(' ');
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_count", "_sum"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

/// Every `callq_...` identifier in a file.
fn used(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut names = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("callq_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[tokio::test]
async fn the_dashboard_and_the_alerts_use_only_metrics_the_services_export() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    assert_eq!(env.post(&integration, &call("seen")).await.status(), 202);
    // A refusal, so that the counter of refusals by cause has its first series.
    let anonymous = env
        .http
        .post(&integration.url)
        .json(&call("x"))
        .send()
        .await;
    assert_eq!(anonymous.expect("an answer").status(), 401);
    env.wait_for_count("SELECT count(*) FROM calls", 1, Duration::from_secs(15))
        .await;
    let mut exported_names = exported(&env.gateway_metrics().await);
    exported_names.extend(exported(&env.worker_metrics().await));

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/observability");
    for file in ["dashboard.json", "alerts.yml"] {
        let names = used(&dir.join(file));
        assert!(!names.is_empty(), "{file} uses no callq metric");
        let unknown: Vec<_> = names.difference(&exported_names).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics nobody exports: {unknown:?}\nexported: {exported_names:?}"
        );
    }
}
