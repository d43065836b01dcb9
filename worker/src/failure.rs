//! Which database errors pass (retry later) and which do not (set the call aside).

/// The class of a transient failure, as counted in metrics; `None` for a permanent one.
pub fn transient_class(error: &sqlx::Error) -> Option<&'static str> {
    match error {
        sqlx::Error::PoolTimedOut => Some("pool_timeout"),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Some("database_unavailable"),
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("40001") => Some("serialization_failure"),
            Some("40P01") => Some("deadlock"),
            Some("55P03") => Some("lock_not_available"),
            // Connection exceptions, insufficient resources (too many connections, disk
            // full), operator intervention (shutdown, restart, "cannot connect now").
            Some(code)
                if code.starts_with("08") || code.starts_with("53") || code.starts_with("57P") =>
            {
                Some("database_unavailable")
            }
            _ => None,
        },
        _ => None,
    }
}
