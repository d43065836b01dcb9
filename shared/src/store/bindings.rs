//! User account bindings: which user an integration's `operator_id` means.
//!
//! An import is the integration's whole set: rows create or update users (by email, within
//! the organisation) and bindings; bindings left out are deactivated, never deleted, so
//! calls already stored keep their operator.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

pub const CSV_HEADER: [&str; 4] = ["email", "first_name", "last_name", "integration_uid"];

#[derive(Debug, Clone, Default, Deserialize)]
pub struct BindingRow {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub integration_uid: Option<String>,
    pub department: Option<String>,
    pub active: Option<bool>,
}

/// A refused row: `index` counts from 0 in the submitted list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub index: usize,
    pub field: &'static str,
    pub problem: RowProblem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowProblem {
    Required,
    NotAnEmail(String),
    Duplicate { uid: String, first_index: usize },
}

impl RowError {
    /// What is wrong, naming other rows the way the caller numbers them (API rows from 0,
    /// CSV lines from 2).
    pub fn describe(&self, row_name: impl Fn(usize) -> String) -> String {
        match &self.problem {
            RowProblem::Required => "is required".into(),
            RowProblem::NotAnEmail(v) => format!("{v:?} is not an email address"),
            RowProblem::Duplicate { uid, first_index } => {
                format!("{uid:?} is already used by {}", row_name(*first_index))
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{} row(s) refused", .0.len())]
    Invalid(Vec<RowError>),
    #[error("no integration {0}")]
    UnknownIntegration(Uuid),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ImportSummary {
    pub imported: u64,
    pub deactivated: u64,
}

/// Every problem of every row, so one answer lets the sender fix the whole file.
pub fn validate(rows: &[BindingRow]) -> Result<(), Vec<RowError>> {
    let mut errors = Vec::new();
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    for (index, row) in rows.iter().enumerate() {
        match row.email.as_deref().map(str::trim) {
            None | Some("") => errors.push(RowError {
                index,
                field: "email",
                problem: RowProblem::Required,
            }),
            Some(email) if !email.contains('@') => errors.push(RowError {
                index,
                field: "email",
                problem: RowProblem::NotAnEmail(email.to_owned()),
            }),
            Some(_) => {}
        }
        match row.integration_uid.as_deref().map(str::trim) {
            None | Some("") => errors.push(RowError {
                index,
                field: "integration_uid",
                problem: RowProblem::Required,
            }),
            Some(uid) => match first_seen.entry(uid) {
                Entry::Occupied(first) => errors.push(RowError {
                    index,
                    field: "integration_uid",
                    problem: RowProblem::Duplicate {
                        uid: uid.to_owned(),
                        first_index: *first.get(),
                    },
                }),
                Entry::Vacant(slot) => {
                    slot.insert(index);
                }
            },
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Postgres notification channel told of every committed import.
pub const BINDINGS_CHANNEL: &str = "callq_bindings";

pub async fn import(
    pool: &PgPool,
    integration_id: Uuid,
    rows: &[BindingRow],
) -> Result<ImportSummary, ImportError> {
    import_reporting(pool, integration_id, rows, |_| {}).await
}

/// `import`, telling `written` how many rows are written so far (in one transaction: none
/// of them counts until the whole file commits).
pub async fn import_reporting(
    pool: &PgPool,
    integration_id: Uuid,
    rows: &[BindingRow],
    mut written: impl FnMut(u64),
) -> Result<ImportSummary, ImportError> {
    validate(rows).map_err(ImportError::Invalid)?;
    let mut tx = pool.begin().await?;
    let organisation_id: Uuid =
        sqlx::query_scalar("SELECT organisation_id FROM integrations WHERE id = $1")
            .bind(integration_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(ImportError::UnknownIntegration(integration_id))?;

    let mut uids = Vec::with_capacity(rows.len());
    for row in rows {
        let email = row.email.as_deref().unwrap_or_default().trim();
        let uid = row.integration_uid.as_deref().unwrap_or_default().trim();
        let department_id: Option<Uuid> = match row.department.as_deref().map(str::trim) {
            Some(name) if !name.is_empty() => Some(
                sqlx::query_scalar(
                    "INSERT INTO departments (id, organisation_id, name) VALUES ($1, $2, $3)
                     ON CONFLICT (organisation_id, name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
                )
                .bind(Uuid::new_v4())
                .bind(organisation_id)
                .bind(name)
                .fetch_one(&mut *tx)
                .await?,
            ),
            _ => None,
        };
        let user_id: Uuid = sqlx::query_scalar(
            "INSERT INTO users (id, organisation_id, department_id, email, first_name, last_name)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (organisation_id, lower(email)) DO UPDATE SET
                first_name = EXCLUDED.first_name,
                last_name = EXCLUDED.last_name,
                department_id = COALESCE(EXCLUDED.department_id, users.department_id),
                updated_at = now()
             RETURNING id",
        )
        .bind(Uuid::new_v4())
        .bind(organisation_id)
        .bind(department_id)
        .bind(email)
        .bind(row.first_name.as_deref().unwrap_or_default().trim())
        .bind(row.last_name.as_deref().unwrap_or_default().trim())
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO user_account_bindings (integration_id, integration_uid, user_id, active)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (integration_id, integration_uid) DO UPDATE SET
                user_id = EXCLUDED.user_id, active = EXCLUDED.active, updated_at = now()",
        )
        .bind(integration_id)
        .bind(uid)
        .bind(user_id)
        .bind(row.active.unwrap_or(true))
        .execute(&mut *tx)
        .await?;
        uids.push(uid.to_owned());
        written(uids.len() as u64);
    }
    let deactivated = sqlx::query(
        "UPDATE user_account_bindings SET active = false, updated_at = now()
         WHERE integration_id = $1 AND active AND integration_uid <> ALL($2)",
    )
    .bind(integration_id)
    .bind(&uids)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    // Delivered on commit: workers replay the calls set aside for operators now bound.
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(BINDINGS_CHANNEL)
        .bind(integration_id.to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(ImportSummary {
        imported: rows.len() as u64,
        deactivated,
    })
}

/// Reads the product's CSV (`email,first_name,last_name,integration_uid`; `department` and
/// `active` columns may follow). Errors carry the CSV line number (the header is line 1).
pub fn parse_csv(input: impl std::io::Read) -> Result<Vec<BindingRow>, Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| vec![format!("line 1: {e}")])?
        .clone();
    let missing: Vec<_> = CSV_HEADER
        .iter()
        .filter(|h| !headers.iter().any(|x| x == **h))
        .collect();
    if !missing.is_empty() {
        return Err(vec![format!(
            "line 1: the header must be {} (missing {})",
            CSV_HEADER.join(","),
            missing
                .iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )]);
    }
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (department, active) = (column("department"), column("active"));
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let get = |idx: Option<usize>| {
            idx.and_then(|i| record.get(i))
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let active = match get(active).map(|v| v.to_ascii_lowercase()) {
            None => None,
            Some(v) if matches!(v.as_str(), "true" | "1" | "yes") => Some(true),
            Some(v) if matches!(v.as_str(), "false" | "0" | "no") => Some(false),
            Some(v) => {
                errors.push(format!(
                    "line {line}: active must be true or false, not {v:?}"
                ));
                None
            }
        };
        rows.push(BindingRow {
            email: get(column("email")),
            first_name: get(column("first_name")),
            last_name: get(column("last_name")),
            integration_uid: get(column("integration_uid")),
            department: get(department),
            active,
        });
    }
    if let Err(row_errors) = validate(&rows) {
        let line = |index: usize| format!("line {}", index + 2);
        errors.extend(
            row_errors
                .iter()
                .map(|e| format!("{}: {} {}", line(e.index), e.field, e.describe(line))),
        );
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

/// The integration's active bindings, in the import format.
pub async fn export_csv(pool: &PgPool, integration_id: Uuid) -> Result<String, sqlx::Error> {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT u.email, u.first_name, u.last_name, b.integration_uid
         FROM user_account_bindings b JOIN users u ON u.id = b.user_id
         WHERE b.integration_id = $1 AND b.active ORDER BY b.integration_uid",
    )
    .bind(integration_id)
    .fetch_all(pool)
    .await?;
    let mut writer = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| sqlx::Error::Protocol(format!("csv: {e}"));
    writer.write_record(CSV_HEADER).map_err(io)?;
    for (email, first, last, uid) in rows {
        writer.write_record([email, first, last, uid]).map_err(io)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| sqlx::Error::Protocol(format!("csv: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_products_csv_example_parses() {
        let rows = parse_csv(
            "email,first_name,last_name,integration_uid\ntel1@example.org,Иван,Буров,1\n"
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].integration_uid.as_deref(), Some("1"));
        assert_eq!(rows[0].first_name.as_deref(), Some("Иван"));
    }

    #[test]
    fn bad_rows_are_named_by_line_and_field() {
        let csv = "email,first_name,last_name,integration_uid\n\
                   a@x.org,A,A,1\n\
                   ,B,B,2\n\
                   c@x.org,C,C,1\n\
                   d@x.org,D,D,\n";
        let errors = parse_csv(csv.as_bytes()).unwrap_err();
        assert_eq!(
            errors,
            vec![
                "line 3: email is required",
                "line 4: integration_uid \"1\" is already used by line 2",
                "line 5: integration_uid is required",
            ]
        );
    }

    #[test]
    fn a_wrong_header_is_refused() {
        let errors = parse_csv("mail,name\nx,y\n".as_bytes()).unwrap_err();
        assert!(errors[0]
            .starts_with("line 1: the header must be email,first_name,last_name,integration_uid"));
    }
}
