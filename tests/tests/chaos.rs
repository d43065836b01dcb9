//! Faults of `deploy/chaos.sh` that fit the suite's time and need no private server (the
//! others are in `failures.rs`): a gateway SIGTERMed while calls pour in.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pipeline_tests::{binary, call, child_env, eventually, TestEnv};

const WAIT: Duration = Duration::from_secs(30);
/// Callers posting at once, each on its own keep-alive connection.
const CALLERS: usize = 8;
/// Calls accepted before the SIGTERM, so that the stop meets a gateway at work.
const BEFORE_STOP: usize = 200;

#[tokio::test]
async fn a_gateway_sigtermed_under_load_answers_what_it_took_and_every_2xx_is_stored_once() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut gateway = tokio::process::Command::new(binary("gateway"))
        .envs(child_env(&env))
        .env("APP_HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the gateway binary");
    let base = format!("http://127.0.0.1:{port}");
    eventually(WAIT, || async {
        match env.http.get(format!("{base}/readyz")).send().await {
            Ok(r) if r.status() == 200 => Ok(()),
            _ => Err(()),
        }
    })
    .await
    .expect("the gateway binary became ready");

    let url = format!("{base}/api/v1/integrations/{}/phone_calls", integration.id);
    let accepted = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..CALLERS)
        .map(|c| {
            let (url, token) = (url.clone(), integration.token.clone());
            let (accepted, stop) = (accepted.clone(), stop.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder().no_proxy().build().unwrap();
                let mut answers = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let uid = format!("c{c}-{n}");
                    n += 1;
                    let sent = http
                        .post(&url)
                        .header("Authorization", &token)
                        .json(&call(&uid))
                        .send()
                        .await;
                    match sent {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            if status == 202 {
                                accepted.fetch_add(1, Ordering::SeqCst);
                            }
                            answers.push((uid, status));
                        }
                        // The gateway is gone or going: its port no longer takes calls.
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
                answers
            })
        })
        .collect();
    eventually(WAIT, || async {
        (accepted.load(Ordering::SeqCst) >= BEFORE_STOP)
            .then_some(())
            .ok_or(())
    })
    .await
    .expect("the gateway accepted calls");

    let pid = gateway.id().expect("the gateway's pid").to_string();
    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    assert!(signalled.success());
    let exited = tokio::time::timeout(WAIT, gateway.wait())
        .await
        .expect("the gateway exited after SIGTERM")
        .unwrap();
    assert!(
        exited.success(),
        "a SIGTERMed gateway exits cleanly: {exited}"
    );
    stop.store(true, Ordering::SeqCst);
    let mut answers = Vec::new();
    for caller in callers {
        answers.extend(caller.await.unwrap());
    }

    let refused: Vec<_> = answers.iter().filter(|(_, s)| *s != 202).collect();
    assert!(
        refused.is_empty(),
        "every request the stopping gateway read was answered 202: {refused:?}"
    );
    let accepted: HashSet<&str> = answers.iter().map(|(uid, _)| uid.as_str()).collect();
    env.wait_for_count("SELECT count(*) FROM calls", accepted.len() as i64, WAIT)
        .await;
    let stored: Vec<String> = sqlx::query_scalar("SELECT uid FROM calls")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    let stored: HashSet<&str> = stored.iter().map(String::as_str).collect();
    assert_eq!(stored, accepted, "each accepted call stored, once");
}
