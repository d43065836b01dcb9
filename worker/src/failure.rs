//! Which database errors pass (retry later) and which do not (set the call aside).

/// What a failed write means for the rows it carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Postgres refuses the row itself (a value it cannot hold, a constraint, a limit of its
    /// own): written again it fails again, so it is set aside at once.
    Refused,
    /// Anything else may pass (an outage, a lock, an unknown error a deploy will fix): the
    /// retry schedule; the class is what metrics count.
    Transient(&'static str),
}

pub fn classify(error: &sqlx::Error) -> Failure {
    if refuses_the_row(error) {
        Failure::Refused
    } else {
        Failure::Transient(transient_class(error).unwrap_or("database_error"))
    }
}

/// Data exceptions (class 22: NUL or an untranslatable character, numeric overflow,
/// datetime out of range, bad encoding, ...), not-null and check violations, program limits
/// (class 54: an index row too big, too many columns), and values sqlx could not encode.
/// Unique and foreign-key violations are not among them: the writes are upserts, and the
/// references come from rows just read, so those mean a race or a bug, not the row.
fn refuses_the_row(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Encode(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("22") || code.starts_with("54") || code == "23502" || code == "23514"
        }),
        _ => false,
    }
}

/// Every class `classify` gives a transient failure, so that metrics show each at 0 before
/// its first retry (a rate over a series that appears at 1 misses that first one).
pub const TRANSIENT_CLASSES: [&str; 6] = [
    "pool_timeout",
    "database_unavailable",
    "serialization_failure",
    "deadlock",
    "lock_not_available",
    "database_error",
];

/// The class of a failure known to pass, as counted in metrics; `None` for any other.
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

/// What people are told of a refusal: Postgres's own words and code, never the connection
/// or the statement.
pub fn refusal(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (SQLSTATE {code})", db.message()),
            None => db.message().to_owned(),
        },
        sqlx::Error::Encode(e) => format!("a value could not be encoded for Postgres: {e}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_timeout_passes() {
        assert_eq!(
            classify(&sqlx::Error::PoolTimedOut),
            Failure::Transient("pool_timeout")
        );
    }

    #[test]
    fn an_unencodable_value_is_refused() {
        let error = sqlx::Error::Encode("nope".into());
        assert_eq!(classify(&error), Failure::Refused);
    }

    #[test]
    fn an_unknown_failure_is_retried() {
        let error = sqlx::Error::RowNotFound;
        assert_eq!(classify(&error), Failure::Transient("database_error"));
    }
}
