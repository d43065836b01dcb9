//! Connections and requests: unauthenticated traffic, slow and greedy clients, odd paths.

use std::time::Duration;

use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt};
use pipeline_tests::query_counter::QueryCounter;
use pipeline_tests::{call, eventually, via_port, Integration, Options, TestEnv};
use reqwest::header::HeaderValue;
use secrecy::ExposeSecret;
use serde_json::Value;
use shared::config::Settings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use uuid::Uuid;

/// No worker: these tests are about what the gateway answers and asks.
async fn env_with(customize: impl FnOnce(&mut Settings) + Send + 'static) -> TestEnv {
    TestEnv::start_with(Options {
        worker: false,
        customize: Box::new(customize),
        ..Default::default()
    })
    .await
}

/// A gateway that reaches Postgres through `counter`, with a cache that outlives the test, so
/// that every statement it runs is counted.
async fn env_behind(counter: &QueryCounter) -> TestEnv {
    let port = counter.port;
    env_with(move |s| {
        // The counter reads the protocol in the clear: no TLS through it.
        let through_counter = via_port(&s.database.url, port);
        s.database.url = format!("{}?sslmode=disable", through_counter.expose_secret()).into();
        s.auth.cache_ttl_secs = 3600;
    })
    .await
}

async fn get(env: &TestEnv, url: &str, authorization: Option<HeaderValue>) -> (u16, Value) {
    let mut request = env.http.get(url);
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let response = request.send().await.expect("gateway answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn token(integration: &Integration) -> Option<HeaderValue> {
    Some(HeaderValue::from_str(&integration.token).expect("token header"))
}

/// Uids no call can have: NUL, empty once trimmed, too long, not UTF-8 once decoded.
fn impossible_uids() -> Vec<String> {
    vec![
        "%00".into(),
        "a%00b".into(),
        "%20%20".into(),
        "x".repeat(256),
        "y".repeat(20_000),
        "%FF".into(),
        "%C3%28".into(),
        "ok%ED%A0%80".into(),
    ]
}

#[tokio::test]
async fn a_get_of_an_impossible_uid_is_404_without_asking_the_database() {
    let counter = QueryCounter::start().await;
    let env = env_behind(&counter).await;
    let integration = env.integration().await;

    for uid in impossible_uids() {
        let (status, body) = get(
            &env,
            &format!("{}/{uid}", integration.url),
            token(&integration),
        )
        .await;
        assert_eq!(status, 404, "{uid:.40}: {body}");
        assert_eq!(body["errors"][0]["status"], 404, "{uid:.40}");
    }
    for id in ["not-a-uuid", "%FF", "%00"] {
        let url = format!("{}/api/v1/integrations/{id}/phone_calls/abc", env.base_url);
        let (status, _) = get(&env, &url, token(&integration)).await;
        assert_eq!(status, 404, "{id}");
    }
    assert_eq!(counter.statements(), Vec::<String>::new());

    // A uid that could exist is looked up: the counter sees the gateway's statements.
    let (status, _) = get(
        &env,
        &format!("{}/absent", integration.url),
        token(&integration),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(counter.count_matching("FROM integrations"), 1);
    assert!(counter.count_matching("FROM call_keys") >= 1);
}

#[tokio::test]
async fn a_thousand_requests_without_a_token_of_ours_never_reach_postgres() {
    let counter = QueryCounter::start().await;
    let env = env_behind(&counter).await;
    let integration = env.integration().await;
    let valid = integration.token.clone();
    let malformed: Vec<Option<HeaderValue>> = vec![
        None,
        Some(HeaderValue::from_static("")),
        Some(HeaderValue::from_static("Bearer ")),
        Some(HeaderValue::from_static("0b23ffc3e579f863288f4462c8")),
        Some(HeaderValue::from_str(&valid.to_uppercase()).unwrap()),
        Some(HeaderValue::from_str(&format!("Bearer {valid}0")).unwrap()),
        Some(HeaderValue::from_str(&valid[1..]).unwrap()),
        Some(HeaderValue::from_str(&format!("g{}", &valid[1..])).unwrap()),
        Some(HeaderValue::from_str(&"a".repeat(4000)).unwrap()),
        Some(HeaderValue::from_bytes("é".repeat(32).as_bytes()).unwrap()),
    ];
    let urls = [
        integration.url.clone(),
        format!("{}/some-uid", integration.url),
        format!(
            "{}/api/v1/integrations/{}/phone_calls",
            env.base_url,
            Uuid::new_v4()
        ),
    ];
    let requests = (0..1000).map(|i| {
        let authorization = malformed[i % malformed.len()].clone();
        let url = urls[(i / malformed.len()) % urls.len()].clone();
        let post = !url.contains("some-uid");
        (url, authorization, post)
    });

    let statuses: Vec<u16> = stream::iter(requests)
        .map(|(url, authorization, post)| {
            let mut request = if post {
                env.http.post(&url).json(&call("never"))
            } else {
                env.http.get(&url)
            };
            if let Some(value) = authorization {
                request = request.header("Authorization", value);
            }
            async move {
                request
                    .send()
                    .await
                    .expect("gateway answers")
                    .status()
                    .as_u16()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;

    assert_eq!(statuses.len(), 1000);
    assert!(statuses.iter().all(|&s| s == 401), "{statuses:?}");
    assert_eq!(counter.statements(), Vec::<String>::new());
}

#[tokio::test]
async fn two_hundred_requests_missing_the_cache_together_load_the_integration_once() {
    let counter = QueryCounter::start().await;
    let env = env_behind(&counter).await;
    let integration = env.integration().await;

    let calls: Vec<Value> = (0..200).map(|i| call(&format!("c{i}"))).collect();

    let answers = join_all(calls.iter().map(|c| env.post(&integration, c))).await;

    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert!(statuses.iter().all(|&s| s == 202), "{statuses:?}");
    assert_eq!(counter.count_matching("FROM integrations"), 1);
    assert_eq!(counter.count_matching("FROM custom_field_definitions"), 1);
}

/// A raw connection to the gateway on `port`.
async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the gateway")
}

fn port_of(env: &TestEnv) -> u16 {
    env.base_url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port in base_url")
}

/// Whether the gateway closes the connection: reads end (EOF or reset) rather than wait.
/// The bound is only there so that a failure fails instead of hanging.
async fn closed_by_gateway(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// One response's head and body, read off a raw connection.
async fn read_response(stream: &mut TcpStream) -> (String, String) {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = find(&received, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&received[end + 4..end + 4 + length]);
                return (head, body.into_owned());
            }
        }
        let n = stream.read(&mut buf).await.expect("read a response");
        assert!(n > 0, "the connection closed before a whole response");
        received.extend_from_slice(&buf[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n";

#[tokio::test]
async fn a_client_that_stalls_in_its_headers_is_disconnected() {
    let env = env_with(|s| s.http.header_read_timeout_ms = 300).await;
    let port = port_of(&env);

    let mut stalled = connect(port).await;
    stalled
        .write_all(b"POST /api/v1/integrations/x/phone_calls HTTP/1.1\r\nHost: gateway\r\n")
        .await
        .unwrap();
    let mut silent = connect(port).await;

    assert!(closed_by_gateway(&mut stalled).await, "half a head");
    assert!(closed_by_gateway(&mut silent).await, "nothing at all");
    let (status, _) = get(&env, &format!("{}/healthz", env.base_url), None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let env = env_with(|s| s.http.keep_alive_idle_ms = 300).await;
    let mut connection = connect(port_of(&env)).await;

    connection.write_all(HEALTHZ).await.unwrap();
    let (head, _) = read_response(&mut connection).await;

    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(closed_by_gateway(&mut connection).await);
}

#[tokio::test]
async fn an_idle_connection_is_kept_past_the_header_timeout() {
    let env = env_with(|s| {
        s.http.header_read_timeout_ms = 500;
        s.http.keep_alive_idle_ms = 60_000;
    })
    .await;
    let mut connection = connect(port_of(&env)).await;
    connection.write_all(HEALTHZ).await.unwrap();
    read_response(&mut connection).await;

    tokio::time::sleep(Duration::from_millis(1500)).await;
    connection.write_all(HEALTHZ).await.unwrap();
    let (head, _) = read_response(&mut connection).await;

    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

/// A POST whose head is sent and whose body is not: once hyper's `100 Continue` arrives, the
/// handler is reading the body, so the request is in flight until the body is sent.
async fn post_in_flight(port: u16, integration: &Integration, body: &[u8]) -> TcpStream {
    let mut stream = connect(port).await;
    let path = integration
        .url
        .split_once("//")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .expect("path of the integration URL");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        integration.token,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (head, _) = read_response(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 100"), "{head}");
    stream
}

#[tokio::test]
async fn past_the_concurrent_request_bound_requests_are_shed_with_retry_after() {
    let env = env_with(|s| {
        s.http.max_concurrent_requests = 2;
        s.http.retry_after_secs = 7;
    })
    .await;
    let integration = env.integration().await;
    let port = port_of(&env);
    let body = serde_json::to_vec(&call("held")).unwrap();
    let mut held = vec![
        post_in_flight(port, &integration, &body).await,
        post_in_flight(port, &integration, &body).await,
    ];

    let shed = env
        .http
        .get(format!("{}/absent", integration.url))
        .header("Authorization", &integration.token)
        .send()
        .await
        .unwrap();
    assert_eq!(shed.status().as_u16(), 503);
    assert_eq!(shed.headers()["retry-after"], "7");
    let document: Value = shed.json().await.unwrap();
    assert_eq!(document["errors"][0]["status"], 503);
    for path in ["/healthz", "/metrics"] {
        let response = env
            .http
            .get(format!("{}{path}", env.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }

    for stream in &mut held {
        stream.write_all(&body).await.unwrap();
        let (head, _) = read_response(stream).await;
        assert!(head.starts_with("HTTP/1.1 202"), "{head}");
    }
    let (status, _) = get(
        &env,
        &format!("{}/absent", integration.url),
        token(&integration),
    )
    .await;
    assert_eq!(
        status, 404,
        "served again once the held requests are answered"
    );
}

#[tokio::test]
async fn shutting_down_finishes_requests_in_flight_and_closes_idle_connections() {
    let env = env_with(|_| {}).await;
    let integration = env.integration().await;
    let gateway = gateway::Application::build(env.settings.clone())
        .await
        .expect("build gateway");
    let port = gateway.port();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(gateway.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let mut idle = connect(port).await;
    idle.write_all(HEALTHZ).await.unwrap();
    read_response(&mut idle).await;
    let body = serde_json::to_vec(&call("drained")).unwrap();
    let mut in_flight = post_in_flight(port, &integration, &body).await;

    stop.send(()).unwrap();
    assert!(closed_by_gateway(&mut idle).await, "the idle connection");
    let refused = eventually(Duration::from_secs(10), || async {
        TcpStream::connect(("127.0.0.1", port))
            .await
            .map(|_| ())
            .err()
            .ok_or("still accepting")
    })
    .await;
    assert!(refused.is_ok(), "new connections are refused");
    in_flight.write_all(&body).await.unwrap();
    let (head, _) = read_response(&mut in_flight).await;

    assert!(head.starts_with("HTTP/1.1 202"), "{head}");
    let finished = tokio::time::timeout(Duration::from_secs(30), serving).await;
    assert!(
        matches!(finished, Ok(Ok(Ok(())))),
        "the gateway stopped once its last request was answered: {finished:?}"
    );
}
