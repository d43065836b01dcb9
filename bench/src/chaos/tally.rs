//! The count once the pipeline is drained: every answer set against the rows. A call is
//! named by its uid, its own in every body, so an answer and its row find each other: a 2xx
//! whose uid is neither in `calls` nor in `dead_letters` is lost, a uid with more than one
//! row is duplicated.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::faults::Fault;
use super::traffic::{Answer, Calls};
use crate::fixture::Fixture;

/// Lost uids shown in the report, so that they can be looked up in the logs.
const LOST_SHOWN: usize = 10;

pub struct Tally {
    pub sent: usize,
    /// Answered 2xx.
    pub accepted: usize,
    /// Non-2xx answers by status, "no answer" for calls that got none in any try.
    pub refused: BTreeMap<String, usize>,
    /// Calls sent more than once because a connection closed under them.
    pub resent: usize,
    /// Accepted calls found in `calls`.
    pub stored: usize,
    /// Accepted calls found in `dead_letters` only.
    pub dead_lettered: usize,
    /// Accepted calls in neither.
    pub lost: usize,
    pub lost_uids: Vec<String>,
    /// Rows beyond the first of each uid.
    pub duplicates: i64,
    /// Uids both stored and dead-lettered.
    pub stored_and_dead: usize,
    /// Calls stored although their answer was not 2xx (the broker confirmed after the
    /// gateway gave up waiting, or the answer was lost on the way).
    pub stored_unaccepted: usize,
    pub recoveries: Vec<Recovery>,
}

/// How the pipeline came back from one fault; durations are from the fault's start.
pub struct Recovery {
    pub fault: Fault,
    /// Non-2xx answers (or none) from the fault's start until the next fault.
    pub refused: usize,
    /// The last of those, when the callers saw the fault end.
    pub refused_until: Option<Duration>,
    /// The first row stored after the service was back.
    pub storing_again: Option<Duration>,
    /// The last call accepted during the fault stored.
    pub caught_up: Option<Duration>,
}

struct Row {
    rows: i64,
    first_stored: DateTime<Utc>,
}

pub async fn count(
    fixture: &Fixture,
    calls: &Calls,
    answers: &[Answer],
    faults: Vec<Fault>,
) -> anyhow::Result<Tally> {
    let rows = rows(fixture).await?;
    let dead = dead_lettered(fixture).await?;
    let mut tally = Tally {
        sent: answers.len(),
        accepted: 0,
        refused: BTreeMap::new(),
        resent: answers.iter().filter(|a| a.tries > 1).count(),
        stored: 0,
        dead_lettered: 0,
        lost: 0,
        lost_uids: Vec::new(),
        duplicates: rows.values().map(|r| r.rows - 1).sum(),
        stored_and_dead: rows.keys().filter(|uid| dead.contains(*uid)).count(),
        stored_unaccepted: 0,
        recoveries: Vec::new(),
    };
    for answer in answers {
        let uid = calls.uid(answer.index);
        let stored = rows.contains_key(&uid);
        if !answer.accepted() {
            let status = match answer.status {
                0 => "no answer".to_owned(),
                status => status.to_string(),
            };
            *tally.refused.entry(status).or_default() += 1;
            tally.stored_unaccepted += usize::from(stored);
            continue;
        }
        tally.accepted += 1;
        if stored {
            tally.stored += 1;
        } else if dead.contains(&uid) {
            tally.dead_lettered += 1;
        } else {
            tally.lost += 1;
            if tally.lost_uids.len() < LOST_SHOWN {
                tally.lost_uids.push(uid);
            }
        }
    }
    let ends: Vec<Duration> = faults
        .iter()
        .skip(1)
        .map(|f| f.began)
        .chain([Duration::MAX])
        .collect();
    for (fault, until) in faults.into_iter().zip(ends) {
        tally
            .recoveries
            .push(recovery(fixture, calls, answers, &rows, fault, until).await?);
    }
    Ok(tally)
}

async fn recovery(
    fixture: &Fixture,
    calls: &Calls,
    answers: &[Answer],
    rows: &HashMap<String, Row>,
    fault: Fault,
    next_fault: Duration,
) -> anyhow::Result<Recovery> {
    let after = answers
        .iter()
        .filter(|a| a.at >= fault.began && a.at < next_fault);
    let refused: Vec<_> = after.clone().filter(|a| !a.accepted()).collect();
    let since = |at: DateTime<Utc>| (at - fault.began_at).to_std().unwrap_or_default();
    let storing_again: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT min(created_at) FROM calls WHERE integration_id = $1 AND created_at > $2",
    )
    .bind(fixture.integration_id)
    .bind(fault.ended_at)
    .fetch_one(&fixture.pool)
    .await
    .context("the first row after a fault")?;
    let caught_up = after
        .filter(|a| a.accepted() && a.at <= fault.ended)
        .filter_map(|a| rows.get(&calls.uid(a.index)))
        .map(|row| row.first_stored)
        .max();
    Ok(Recovery {
        refused: refused.len(),
        refused_until: refused
            .iter()
            .map(|a| a.at.saturating_sub(fault.began))
            .max(),
        storing_again: storing_again.map(since),
        caught_up: caught_up.map(since),
        fault,
    })
}

/// Rows per uid of the fixture's integration, and when each uid was first stored.
async fn rows(fixture: &Fixture) -> anyhow::Result<HashMap<String, Row>> {
    let rows: Vec<(String, i64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT uid, count(*), min(created_at) FROM calls WHERE integration_id = $1 GROUP BY uid",
    )
    .bind(fixture.integration_id)
    .fetch_all(&fixture.pool)
    .await
    .context("read the stored uids")?;
    Ok(rows
        .into_iter()
        .map(|(uid, rows, first_stored)| (uid, Row { rows, first_stored }))
        .collect())
}

async fn dead_lettered(fixture: &Fixture) -> anyhow::Result<HashSet<String>> {
    let uids: Vec<(String,)> = sqlx::query_as(
        "SELECT uid FROM dead_letters WHERE (integration_id = $1 OR integration_id IS NULL) AND uid IS NOT NULL",
    )
    .bind::<Uuid>(fixture.integration_id)
    .fetch_all(&fixture.pool)
    .await
    .context("read the dead-lettered uids")?;
    Ok(uids.into_iter().map(|(uid,)| uid).collect())
}
