//! Whether a database error means Postgres cannot be reached right now (and may be again
//! soon), as opposed to an answer about the data asked for.

/// The pool gave up waiting for a connection, the connection failed or broke, or the server
/// said it cannot serve now: connection exceptions (SQLSTATE class 08), insufficient resources
/// (53: too many connections, disk full), operator intervention (57P: shutdown, restart,
/// "the database system is starting up" during a failover).
pub fn unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || code.starts_with("53") || code.starts_with("57P")
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_that_cannot_connect_is_unavailable() {
        assert!(unavailable(&sqlx::Error::PoolTimedOut));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(unavailable(&sqlx::Error::Io(refused)));
    }

    #[test]
    fn an_answer_about_the_data_is_not_an_outage() {
        assert!(!unavailable(&sqlx::Error::RowNotFound));
        assert!(!unavailable(&sqlx::Error::ColumnNotFound("id".into())));
    }
}
