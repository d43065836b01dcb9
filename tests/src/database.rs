//! Each test's own database, cloned from a template migrated once per set of migrations.

use sqlx::{Connection, PgConnection, PgPool};

use crate::PG_ADMIN_URL;

/// Clones a template database migrated once per set of migrations; concurrent test
/// processes agree through an advisory lock.
pub(crate) async fn create(name: &str) {
    let mut admin = PgConnection::connect(PG_ADMIN_URL)
        .await
        .expect("connect to postgres as postgres");
    let fingerprint: String = shared::store::MIGRATOR
        .iter()
        .map(|m| format!("{}:{}", m.version, hex::encode(&m.checksum)))
        .collect::<Vec<_>>()
        .join(",");
    let template = format!(
        "callq_template_{}",
        &hex::encode(sha2_digest(fingerprint.as_bytes()))[..16]
    );
    sqlx::query("SELECT pg_advisory_lock(727274)")
        .execute(&mut admin)
        .await
        .expect("lock");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut admin)
            .await
            .expect("template lookup");
    if !exists {
        let building = format!("{template}_building");
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
        sqlx::query(&format!("CREATE DATABASE {building}"))
            .execute(&mut admin)
            .await
            .expect("create template");
        let pool = PgPool::connect(&format!("postgres://postgres@127.0.0.1:5432/{building}"))
            .await
            .expect("template");
        shared::store::migrate(&pool)
            .await
            .expect("migrate template");
        pool.close().await;
        // A closed pool's backends may still be exiting, and a database with sessions cannot
        // be renamed: wait for them to go.
        sqlx::query(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = $1",
        )
        .bind(&building)
        .execute(&mut admin)
        .await
        .expect("end the template's sessions");
        sqlx::query(&format!("ALTER DATABASE {building} RENAME TO {template}"))
            .execute(&mut admin)
            .await
            .expect("publish template");
    }
    sqlx::query(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
        .execute(&mut admin)
        .await
        .expect("create test database");
    sqlx::query("SELECT pg_advisory_unlock(727274)")
        .execute(&mut admin)
        .await
        .expect("unlock");
}

fn sha2_digest(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).to_vec()
}
