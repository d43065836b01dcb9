//! Postgres: the pool, the migrations, and the account data both binaries and the CLI use.

pub mod accounts;
pub mod availability;
pub mod bindings;
pub mod dead_letters;
pub mod erasure;
pub mod fields;
pub mod integrations;
pub mod reprobe;
pub mod retention;

use secrecy::ExposeSecret;
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::config::DatabaseSettings;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// A lazy pool: processes start (and report not-ready) while the database is down.
pub fn pool(settings: &DatabaseSettings) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        // sqlx pings every connection it hands back to the pool; pinging again when it is
        // taken out cost a round trip per query. A connection that died while idle fails
        // its next query, which both binaries already treat as transient, and is then closed.
        .test_before_acquire(false)
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout())
        .connect_lazy(settings.url.expose_secret())
}

/// The pool for connections that need a server session of their own (LISTEN, the
/// migrations' advisory lock): `pool` itself unless `database.direct_url` names another
/// address, where a lazy pool of one connection goes.
pub fn session_pool(settings: &DatabaseSettings, pool: &PgPool) -> Result<PgPool, sqlx::Error> {
    match settings.session_url() {
        None => Ok(pool.clone()),
        Some(url) => PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(settings.acquire_timeout())
            .connect_lazy(url.expose_secret()),
    }
}

pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}
