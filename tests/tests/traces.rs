//! One call's trace across the broker: a gateway and a worker (real processes, exporting to
//! an in-test OTLP receiver through the standard OTEL_* variables) produce spans of one
//! trace, the worker's batch span a child of the gateway's span that published the call, and
//! the probe's span a child of the batch's.

use std::time::Duration;

use pipeline_tests::otlp_receiver::{OtlpReceiver, ReceivedSpan};
use pipeline_tests::{binary, call, child_env, eventually, Options, TestEnv};

const WAIT: Duration = Duration::from_secs(30);

fn otel_env(receiver: &OtlpReceiver) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.clone()),
        // Exported within a fraction of a second rather than the default few seconds.
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        // Spans are exported whatever the log filter keeps.
        ("APP_LOG__FILTER", "warn".into()),
    ]
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test]
async fn one_call_is_one_trace_from_the_post_through_the_broker_to_the_batch_and_the_probe() {
    let receiver = OtlpReceiver::start().await;
    let env = TestEnv::start_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    let port = free_port();
    let spawn = |name: &str, extra: Vec<(&'static str, String)>| {
        tokio::process::Command::new(binary(name))
            .envs(child_env(&env))
            .envs(otel_env(&receiver))
            .envs(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the binary")
    };
    let _gateway = spawn(
        "gateway",
        vec![("APP_HTTP__LISTEN", format!("127.0.0.1:{port}"))],
    );
    let _worker = spawn("worker", Vec::new());
    let base = format!("http://127.0.0.1:{port}");
    let up = eventually(WAIT, || async {
        match env.http.get(format!("{base}/healthz")).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(up.is_ok(), "the gateway binary did not come up: {up:?}");

    let url = integration.url.replace(&env.base_url, &base);
    let answer = env
        .http
        .post(&url)
        .header("Authorization", &integration.token)
        .json(&call("traced"))
        .send()
        .await
        .expect("POST");
    assert_eq!(answer.status(), 202);
    env.wait_for_count("SELECT count(*) FROM calls", 1, WAIT)
        .await;

    let trace = eventually(WAIT, || async {
        let spans = receiver.spans();
        find_trace(&spans).ok_or(spans)
    })
    .await;
    let (publishing, batch, probe) = trace.unwrap_or_else(|spans| {
        let seen: Vec<_> = spans
            .iter()
            .map(|s| {
                (
                    s.service.as_str(),
                    s.span.name.as_str(),
                    hex::encode(&s.span.trace_id),
                )
            })
            .collect();
        panic!("no trace from the gateway through the worker to the probe among {seen:?}")
    });
    // Shown with --nocapture: the trace as a reader of a tracing backend would see it.
    let trace_id = publishing.span.trace_id.clone();
    for s in receiver
        .spans()
        .iter()
        .filter(|s| s.span.trace_id == trace_id)
    {
        eprintln!(
            "trace {} span {} parent {:16} {:8} {}",
            hex::encode(&s.span.trace_id),
            hex::encode(&s.span.span_id),
            hex::encode(&s.span.parent_span_id),
            s.service,
            s.span.name,
        );
    }
    assert_eq!(publishing.service, "gateway");
    assert_eq!(batch.service, "worker");
    assert_eq!(batch.span.trace_id, publishing.span.trace_id);
    assert_eq!(batch.span.parent_span_id, publishing.span.span_id);
    assert!(
        batch
            .span
            .links
            .iter()
            .any(|l| l.span_id == publishing.span.span_id),
        "the batch span links to the call's span"
    );
    assert_eq!(probe.span.trace_id, publishing.span.trace_id);
    assert_eq!(probe.span.parent_span_id, batch.span.span_id);
}

/// The gateway's span of the POST handler, the worker's batch span whose parent it is, and
/// the probe span under that batch.
fn find_trace(spans: &[ReceivedSpan]) -> Option<(ReceivedSpan, ReceivedSpan, ReceivedSpan)> {
    spans
        .iter()
        .filter(|s| s.service == "gateway" && s.span.name == "create")
        .find_map(|publishing| {
            let batch = spans.iter().find(|s| {
                s.service == "worker"
                    && s.span.name == "batch"
                    && s.span.parent_span_id == publishing.span.span_id
            })?;
            let probe = spans.iter().find(|s| {
                s.service == "worker"
                    && s.span.name == "probe"
                    && s.span.parent_span_id == batch.span.span_id
            })?;
            Some((publishing.clone(), batch.clone(), probe.clone()))
        })
}
