use tokio::sync::oneshot;

use super::*;

/// Entries fresh for `fresh_secs` (0: stale at once), served for an hour, and a circuit that
/// stays open for the rest of the test once a refresh failed.
fn cache(fresh_secs: u64) -> LastLoaded<u32> {
    cache_waiting(fresh_secs, 60_000)
}

fn cache_waiting(fresh_secs: u64, refresh_timeout_ms: u64) -> LastLoaded<u32> {
    let settings = AuthSettings {
        cache_ttl_secs: fresh_secs,
        cache_max_entries: 100,
        stale_max_secs: 3600,
        refresh_timeout_ms,
        refresh_pause_ms: 3_600_000,
    };
    LastLoaded::new(&settings, DatabaseCircuit::new(settings.refresh_pause()))
}

async fn found(value: u32) -> Result<u32, sqlx::Error> {
    Ok(value)
}

async fn unreachable() -> Result<u32, sqlx::Error> {
    Err(sqlx::Error::Io(
        std::io::ErrorKind::ConnectionRefused.into(),
    ))
}

async fn not_asked() -> Result<u32, sqlx::Error> {
    panic!("the database was asked")
}

#[tokio::test]
async fn a_fresh_entry_is_served_without_asking_the_database() {
    let cache = cache(3600);
    let key = Uuid::new_v4();
    assert_eq!(cache.get(key, found(1)).await.unwrap(), 1);
    assert_eq!(cache.get(key, not_asked()).await.unwrap(), 1);
}

#[tokio::test]
async fn an_entry_past_its_ttl_is_refreshed() {
    let cache = cache(0);
    let key = Uuid::new_v4();
    assert_eq!(cache.get(key, found(1)).await.unwrap(), 1);
    assert_eq!(cache.get(key, found(2)).await.unwrap(), 2);
}

#[tokio::test]
async fn without_the_database_the_last_loaded_value_serves_and_the_next_requests_do_not_ask() {
    let cache = cache(0);
    let key = Uuid::new_v4();
    cache.get(key, found(1)).await.unwrap();
    assert_eq!(cache.get(key, unreachable()).await.unwrap(), 1);
    assert_eq!(cache.get(key, not_asked()).await.unwrap(), 1);
    let other = Uuid::new_v4();
    cache.entries.insert(other, Loaded::new(7)).await;
    assert_eq!(
        cache.get(other, not_asked()).await.unwrap(),
        7,
        "the circuit is the gateway's, not the key's"
    );
}

#[tokio::test]
async fn a_database_that_does_not_answer_is_not_waited_for_past_the_refresh_timeout() {
    let cache = cache_waiting(0, 100);
    let key = Uuid::new_v4();
    cache.get(key, found(1)).await.unwrap();
    let silent = std::future::pending::<Result<u32, sqlx::Error>>();
    assert_eq!(cache.get(key, silent).await.unwrap(), 1);
    assert_eq!(cache.get(key, not_asked()).await.unwrap(), 1);
}

#[tokio::test]
async fn an_error_that_is_not_an_outage_is_not_hidden() {
    let cache = cache(0);
    let key = Uuid::new_v4();
    cache.get(key, found(1)).await.unwrap();
    let refused = cache
        .get(key, async { Err(sqlx::Error::RowNotFound) })
        .await;
    assert!(matches!(
        refused.as_ref().map_err(|e| &**e),
        Err(sqlx::Error::RowNotFound)
    ));
}

#[tokio::test]
async fn a_key_never_loaded_has_nothing_to_fall_back_on() {
    let cache = cache(0);
    assert!(cache.get(Uuid::new_v4(), unreachable()).await.is_err());
}

#[tokio::test]
async fn while_one_request_refreshes_an_entry_the_others_answer_from_it() {
    let cache = cache(0);
    let key = Uuid::new_v4();
    cache.get(key, found(1)).await.unwrap();
    let (started, refresh_started) = oneshot::channel();
    let (release, released) = oneshot::channel::<()>();
    let refreshing = tokio::spawn({
        let cache = cache.clone();
        async move {
            cache
                .get(key, async move {
                    let _ = started.send(());
                    let _ = released.await;
                    Ok(2)
                })
                .await
        }
    });
    refresh_started.await.unwrap();
    assert_eq!(cache.get(key, not_asked()).await.unwrap(), 1);
    release.send(()).unwrap();
    assert_eq!(refreshing.await.unwrap().unwrap(), 2);
    assert_eq!(
        cache.get(key, found(3)).await.unwrap(),
        3,
        "stale again at once"
    );
}
