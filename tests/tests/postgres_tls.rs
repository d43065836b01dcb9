//! Postgres over TLS: the URL's sslmode and sslrootcert are honoured, and the pipeline (the
//! `admin` binary's migrations, a gateway and a worker) runs against a server that accepts
//! nothing but TLS.

use std::time::Duration;

use pipeline_tests::tls_postgres::TlsPostgres;
use pipeline_tests::{binary, call, eventually, Options, TestEnv};
use secrecy::SecretString;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};

const WAIT: Duration = Duration::from_secs(30);

/// What the server says of this session: (TLS in use, protocol version).
async fn session_tls(conn: &mut PgConnection) -> (bool, Option<String>) {
    sqlx::query_as("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(conn)
        .await
        .expect("pg_stat_ssl")
}

async fn refusal(url: &str) -> String {
    match PgConnection::connect(url).await {
        Ok(_) => panic!("{url} connected; it should have been refused"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn sslmode_and_sslrootcert_of_the_url_are_honoured() {
    let Some(server) = TlsPostgres::start() else {
        return;
    };
    let (ca, other_ca) = (server.ca(), server.other_ca());

    // require: encrypted, the certificate unchecked (libpq's meaning without a root cert).
    let mut conn = PgConnection::connect(&server.url("127.0.0.1", "postgres", "sslmode=require"))
        .await
        .expect("sslmode=require connects");
    let (ssl, version) = session_tls(&mut conn).await;
    assert!(ssl, "the server sees a plain session under sslmode=require");
    assert!(
        version.is_some_and(|v| v.starts_with("TLSv1.")),
        "no TLS version"
    );

    // verify-full: the chain up to the given CA and the host name both checked.
    let verified = format!("sslmode=verify-full&sslrootcert={ca}");
    let mut conn = PgConnection::connect(&server.url("localhost", "postgres", &verified))
        .await
        .expect("verify-full with the right CA and host name connects");
    assert!(session_tls(&mut conn).await.0);

    // verify-full refuses an address the certificate does not name. So does verify-ca, which
    // in libpq checks the chain only: sqlx 0.8.6 misses the name-mismatch error that rustls
    // reports since 0.23.24 (sqlx issue 3793, fixed after 0.8.6; docs/postgres.md). When this
    // assertion fails, sqlx has the fix: correct docs/postgres.md.
    let wrong_name = refusal(&server.url("127.0.0.1", "postgres", &verified)).await;
    assert!(
        wrong_name.contains("not valid for name"),
        "unclear refusal of a wrong host name: {wrong_name}"
    );
    let chain_only = format!("sslmode=verify-ca&sslrootcert={ca}");
    PgConnection::connect(&server.url("localhost", "postgres", &chain_only))
        .await
        .expect("verify-ca with the right CA connects");
    let chain_only_wrong_name = refusal(&server.url("127.0.0.1", "postgres", &chain_only)).await;
    assert!(chain_only_wrong_name.contains("not valid for name"));

    // A CA that did not sign the server's certificate, or none but the public roots.
    let wrong_ca = format!("sslmode=verify-full&sslrootcert={other_ca}");
    let unknown = refusal(&server.url("localhost", "postgres", &wrong_ca)).await;
    assert!(
        unknown.contains("invalid peer certificate") && unknown.contains("UnknownIssuer"),
        "unclear refusal of an unknown issuer: {unknown}"
    );
    let public_roots_only =
        refusal(&server.url("localhost", "postgres", "sslmode=verify-full")).await;
    assert!(
        public_roots_only.contains("UnknownIssuer"),
        "a private CA's certificate passed the public roots: {public_roots_only}"
    );

    // The server takes nothing else: a plain session is turned away.
    let plain = refusal(&server.url("127.0.0.1", "postgres", "sslmode=disable")).await;
    assert!(plain.contains("pg_hba.conf rejects"), "{plain}");
}

#[tokio::test]
async fn a_call_is_stored_through_a_gateway_and_worker_whose_database_url_says_verify_full() {
    let Some(server) = TlsPostgres::start() else {
        return;
    };
    let verified = format!("sslmode=verify-full&sslrootcert={}", server.ca());
    let mut admin = PgConnection::connect(&server.url("localhost", "postgres", &verified))
        .await
        .expect("connect over TLS");
    sqlx::query("CREATE DATABASE callq")
        .execute(&mut admin)
        .await
        .expect("create database");
    let url = server.url("localhost", "callq", &verified);

    // The real `admin migrate`, whose database.url leads nowhere: the migrations take
    // database.direct_url, as they must past a pooler in transaction mode.
    let migrate = tokio::process::Command::new(binary("admin"))
        .env("APP_DATABASE__URL", "postgres://postgres@127.0.0.1:1/callq")
        .env("APP_DATABASE__DIRECT_URL", &url)
        .env("APP_DATABASE__ACQUIRE_TIMEOUT_MS", "30000")
        .arg("migrate")
        .output()
        .await
        .expect("run admin migrate");
    assert!(
        migrate.status.success(),
        "admin migrate over TLS failed: {}",
        String::from_utf8_lossy(&migrate.stderr)
    );

    // The worker's LISTEN goes to database.direct_url, here the same server under an
    // application name of its own, so that the server shows which session it is.
    let tls_url = url.clone();
    let direct_url = format!("{url}&application_name=callq-direct");
    let mut env = TestEnv::start_with(Options {
        customize: Box::new(move |settings| {
            settings.database.url = SecretString::from(tls_url);
            settings.database.direct_url = SecretString::from(direct_url);
        }),
        ..Options::default()
    })
    .await;
    // The harness's own pool goes to its database on the shared server; this test's rows
    // are on the TLS server.
    env.pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("test pool over TLS");
    let integration = env.integration().await;

    let response = env.post(&integration, &call("tls-1")).await;
    assert_eq!(response.status(), 202);
    env.wait_for_count("SELECT count(*) FROM calls WHERE uid = 'tls-1'", 1, WAIT)
        .await;
    let (status, _) = env.get_call(&integration, "tls-1").await;
    assert_eq!(status, 200, "the gateway reads the stored call back");

    // Every session on the server is TLS (pg_hba.conf leaves no other way in), and the
    // services' sessions are there beside the test's own one.
    let (sessions, plain): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE NOT s.ssl)
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
         WHERE a.backend_type = 'client backend' AND a.datname = 'callq'",
    )
    .fetch_one(&env.pool)
    .await
    .expect("sessions");
    assert_eq!(plain, 0);
    assert!(
        sessions > 2,
        "only {sessions} sessions: the services are not connected"
    );

    let listening = eventually(WAIT, || async {
        let sessions: Vec<(String, bool)> = sqlx::query_as(
            "SELECT a.query, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
             WHERE a.application_name = 'callq-direct'",
        )
        .fetch_all(&env.pool)
        .await
        .expect("direct sessions");
        match sessions.as_slice() {
            [(query, true)] if query.starts_with("LISTEN") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    if let Err(sessions) = listening {
        panic!("no TLS session listening through database.direct_url: {sessions}");
    }
    env.stop_worker().await;
}
