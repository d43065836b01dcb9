//! Realistic call bodies, all built before any timing starts: 600 B to 2 KB of JSON, custom
//! fields of the common types, a client on most calls, a transcription on about 30 %, an
//! operator drawn from the bound ones and a `uid` of its own each. Seeded, so two runs send
//! the same shapes. A share of the recordings may live on other hosts, drawn by a generator of
//! its own: with bases of one length, those bodies differ from the all-one-host ones only in
//! their `media_url`.

use bytes::Bytes;
use chrono::{Duration, FixedOffset, Utc};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Map, Value};

pub const MIN_BYTES: usize = 600;
pub const MAX_BYTES: usize = 2048;
const TRANSCRIPTION_SHARE: f64 = 0.3;
/// Distinct client ids: clients recur across calls, as they do in a call centre.
const CLIENTS: u32 = 5000;

const TOPICS: [&str; 4] = ["Поддержка", "Продажи", "Billing", "Retention"];
const SUB_TOPICS: [&str; 4] = [
    "Возобновление доступа",
    "Смена тарифа",
    "Refund request",
    "Delivery status",
];
const FIRST_NAMES: [&str; 5] = ["John", "Анна", "Ivan", "Мария", "Olga"];
const LAST_NAMES: [&str; 5] = ["Doe", "Петрова", "Burov", "Smith", "Кузнецова"];
const COMPANIES: [&str; 4] = ["Test Company", "ООО Ромашка", "Acme Ltd", "Globex"];
const SENTENCES: [&str; 6] = [
    "Здравствуйте, чем могу помочь?",
    "I would like to check the status of my order, please.",
    "Одну минуту, я проверю информацию по вашему договору.",
    "The payment went through yesterday but access is still blocked.",
    "Спасибо за ожидание, доступ восстановлен.",
    "Thank you, have a nice day!",
];

/// What every body of one batch shares.
pub struct Spec<'a> {
    /// `integration_uid`s of the bound operators.
    pub operators: &'a [String],
    /// Where recordings live (the bench's media server), without a trailing slash.
    pub media_base: &'a str,
    /// Other recording hosts and the share of bodies pointing at each (base, share); the
    /// rest point at `media_base`.
    pub other_media: &'a [(&'a str, f64)],
    /// Makes the `uid`s of this batch distinct from every other batch's.
    pub uid_prefix: &'a str,
    pub seed: u64,
}

/// Sizes of a batch, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Shape {
    pub min_bytes: usize,
    pub mean_bytes: usize,
    pub max_bytes: usize,
    pub with_transcription: usize,
    /// Bodies pointing at each of [`Spec::other_media`], in its order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_media: Vec<usize>,
}

/// Seeds the choice of recording host, apart from the bodies' shapes (an arbitrary constant).
const HOST_SEED: u64 = 0x006d_6564_6961;

pub fn generate(n: usize, spec: &Spec<'_>) -> (Vec<Bytes>, Shape) {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut hosts = StdRng::seed_from_u64(spec.seed ^ HOST_SEED);
    let mut with_transcription = 0;
    let mut other_media = vec![0; spec.other_media.len()];
    let bodies: Vec<Bytes> = (0..n)
        .map(|i| {
            let transcribed = rng.random_bool(TRANSCRIPTION_SHARE);
            with_transcription += usize::from(transcribed);
            let base = match media_host(&mut hosts, spec.other_media) {
                Some(other) => {
                    other_media[other] += 1;
                    spec.other_media[other].0
                }
                None => spec.media_base,
            };
            Bytes::from(body(&mut rng, i, spec, base, transcribed))
        })
        .collect();
    let sizes = bodies.iter().map(Bytes::len);
    let shape = Shape {
        min_bytes: sizes.clone().min().unwrap_or(0),
        mean_bytes: sizes.clone().sum::<usize>() / n.max(1),
        max_bytes: sizes.max().unwrap_or(0),
        with_transcription,
        other_media,
    };
    (bodies, shape)
}

/// Body `i` of a series without end, from a generator seeded by its index alone: for a run
/// measured in time rather than in calls, which builds each body as it sends it.
pub fn nth(i: usize, spec: &Spec<'_>) -> Bytes {
    let mut rng = StdRng::seed_from_u64(spec.seed.rotate_left(32) ^ i as u64);
    let transcribed = rng.random_bool(TRANSCRIPTION_SHARE);
    Bytes::from(body(&mut rng, i, spec, spec.media_base, transcribed))
}

/// Which of `others` a body's recording lives on, if any: drawn against their shares.
fn media_host(rng: &mut StdRng, others: &[(&str, f64)]) -> Option<usize> {
    if others.is_empty() {
        return None;
    }
    let mut draw: f64 = rng.random();
    others.iter().position(|&(_, share)| {
        draw -= share;
        draw < 0.0
    })
}

fn body(
    rng: &mut StdRng,
    i: usize,
    spec: &Spec<'_>,
    media_base: &str,
    transcribed: bool,
) -> Vec<u8> {
    let uid = format!("{}-{i}", spec.uid_prefix);
    let duration: f64 = (rng.random_range(5_000..900_000) as f64) / 1000.0;
    let mut call = json!({
        "operator_id": spec.operators.choose(rng).expect("operators are bound"),
        "started_at": started_at(rng),
        "direction": if rng.random_bool(0.6) { "incoming" } else { "outcoming" },
        "duration": duration,
        "client_phone_number": format!("+37533{:07}", rng.random_range(0..10_000_000)),
        "media_url": format!("{media_base}/recordings/{uid}.wav"),
        "uid": uid,
        "custom_fields": custom_fields(rng),
    });
    let obj = call.as_object_mut().expect("an object");
    if rng.random_bool(0.6) {
        let client = rng.random_range(0..CLIENTS);
        obj.insert(
            "client".into(),
            json!({
                "id": format!("client-{client}@example.com"),
                "company_name": COMPANIES[client as usize % COMPANIES.len()],
                "first_name": FIRST_NAMES[client as usize % FIRST_NAMES.len()],
                "last_name": LAST_NAMES[client as usize % LAST_NAMES.len()],
            }),
        );
    }
    if rng.random_bool(0.2) {
        let chain = format!("chain-{}", rng.random_range(0..100_000));
        obj.insert("phone_call_chain_uid".into(), chain.into());
    }
    if rng.random_bool(0.3) {
        obj.insert("nps".into(), rng.random_range(0..=10).into());
    }

    let size = serde_json::to_vec(&call).expect("JSON").len();
    if transcribed {
        let target = rng.random_range(1200..=MAX_BYTES);
        add_transcription(rng, &mut call, size, target, duration);
    } else {
        let target = rng.random_range(MIN_BYTES..=1200);
        add_comment(rng, &mut call, size, target);
    }
    serde_json::to_vec(&call).expect("JSON")
}

/// The contract's own formats: an hour-only offset, and the full one.
fn started_at(rng: &mut StdRng) -> String {
    let offset = FixedOffset::east_opt(3 * 3600).expect("offset");
    let at =
        (Utc::now() - Duration::seconds(rng.random_range(0..30 * 86_400))).with_timezone(&offset);
    if rng.random_bool(0.5) {
        at.format("%Y-%m-%dT%H:%M:%S+03").to_string()
    } else {
        at.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()
    }
}

/// Each key always carries the same type, as an organisation's fields do.
fn custom_fields(rng: &mut StdRng) -> Value {
    let mut fields = Map::new();
    fields.insert("topic".into(), (*TOPICS.choose(rng).expect("topic")).into());
    fields.insert(
        "sub-topic".into(),
        (*SUB_TOPICS.choose(rng).expect("sub-topic")).into(),
    );
    fields.insert("reopen_count".into(), rng.random_range(0..10).into());
    fields.insert("opened_at".into(), "2020-06-21T09:51:13.588Z".into());
    if rng.random_bool(0.5) {
        fields.insert("languages".into(), json!(["ru", "by", "kz"]));
    }
    if rng.random_bool(0.5) {
        let vip = if rng.random_bool(0.1) {
            "true"
        } else {
            "false"
        };
        fields.insert("is_vip".into(), vip.into());
    }
    if rng.random_bool(0.5) {
        let deal = rng.random_range(0..1_000_000);
        fields.insert(
            "crm_link".into(),
            format!("https://crm.example.com/deals/{deal}").into(),
        );
    }
    Value::Object(fields)
}

/// Phrases until the body is about `target` bytes (never over [`MAX_BYTES`]).
fn add_transcription(
    rng: &mut StdRng,
    call: &mut Value,
    mut size: usize,
    target: usize,
    duration: f64,
) {
    const ARRAY_OVERHEAD: usize = r#","transcription":[]"#.len();
    size += ARRAY_OVERHEAD;
    let mut phrases = Vec::new();
    let mut at = 0.0_f64;
    loop {
        let end = (at + rng.random_range(1.0..6.0)).min(duration);
        let phrase = json!({
            "text": *SENTENCES.choose(rng).expect("sentence"),
            "start_time": (at * 100.0).round() / 100.0,
            "end_time": (end * 100.0).round() / 100.0,
            "role": if phrases.len() % 2 == 0 { "operator" } else { "client" },
        });
        let cost = serde_json::to_vec(&phrase).expect("JSON").len() + 1;
        if size + cost > target.min(MAX_BYTES) && !phrases.is_empty() {
            break;
        }
        size += cost;
        phrases.push(phrase);
        at = end;
    }
    call["transcription"] = Value::Array(phrases);
}

/// A free-text field that brings the body to `target` bytes.
fn add_comment(rng: &mut StdRng, call: &mut Value, size: usize, target: usize) {
    const FIELD_OVERHEAD: usize = r#","comment":"""#.len();
    if size >= target {
        return;
    }
    let room = target.saturating_sub(size + FIELD_OVERHEAD);
    let mut comment = String::with_capacity(room);
    while comment.len() < room {
        comment.push_str(SENTENCES.choose(rng).expect("sentence"));
        comment.push(' ');
    }
    // Rounded up to a whole character, so the body never ends below `target`.
    let mut cut = room;
    while !comment.is_char_boundary(cut) {
        cut += 1;
    }
    comment.truncate(cut);
    call["custom_fields"]["comment"] = comment.into();
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use shared::contract::{parse_call, Body};
    use shared::domain::FieldType;

    use super::*;

    /// As long as the main base, so that the bodies keep their shapes.
    const OTHERS: [(&str, f64); 2] = [("http://127.0.0.1:7", 0.1), ("http://127.0.0.1:8", 0.2)];

    fn batch_with(n: usize, other_media: &[(&str, f64)]) -> (Vec<Bytes>, Shape) {
        let operators = vec!["a@example.com".to_owned(), "b@example.com".to_owned()];
        let spec = Spec {
            operators: &operators,
            media_base: "http://127.0.0.1:9",
            other_media,
            uid_prefix: "t",
            seed: 7,
        };
        generate(n, &spec)
    }

    fn batch(n: usize) -> (Vec<Bytes>, Shape) {
        batch_with(n, &[])
    }

    fn media_url(body: &Bytes) -> String {
        let call: Value = serde_json::from_slice(body).expect("JSON");
        call["media_url"].as_str().expect("a media_url").to_owned()
    }

    #[test]
    fn bodies_are_600_bytes_to_2_kb() {
        let (_, shape) = batch(5000);
        assert!(shape.min_bytes >= MIN_BYTES, "{shape:?}");
        assert!(shape.max_bytes <= MAX_BYTES, "{shape:?}");
    }

    #[test]
    fn about_30_percent_carry_a_transcription() {
        let (_, shape) = batch(5000);
        assert!(
            (1250..1750).contains(&shape.with_transcription),
            "{shape:?}"
        );
    }

    #[test]
    fn every_body_is_a_valid_call_with_its_own_uid() {
        let (bodies, _) = batch(2000);
        let mut uids = HashSet::new();
        // One organisation's definitions, as the gateway keeps them: each key has one type.
        let mut definitions: HashMap<String, FieldType> = HashMap::new();
        let limits = shared::config::Settings::defaults().limits;
        for body in &bodies {
            let body = Body::parse(body).expect("JSON");
            let parsed = parse_call(&body, &definitions, &limits).expect("a valid call");
            definitions.extend(parsed.new_fields);
            assert!(uids.insert(parsed.call.storage_key().uid));
        }
    }

    #[test]
    fn the_nth_body_is_the_same_each_time_and_its_uid_is_its_own() {
        let operators = vec!["a@example.com".to_owned()];
        let spec = Spec {
            operators: &operators,
            media_base: "http://127.0.0.1:9",
            other_media: &[],
            uid_prefix: "n",
            seed: 7,
        };
        let uid = |b: &Bytes| serde_json::from_slice::<Value>(b).expect("JSON")["uid"].clone();
        assert_eq!(nth(41, &spec), nth(41, &spec));
        assert_eq!(uid(&nth(41, &spec)), "n-41");
        assert_ne!(uid(&nth(41, &spec)), uid(&nth(42, &spec)));
    }

    #[test]
    fn other_hosts_get_their_share_and_the_same_seed_gives_the_same_hosts() {
        let (bodies, shape) = batch_with(10_000, &OTHERS);
        assert!((800..1200).contains(&shape.other_media[0]), "{shape:?}");
        assert!((1700..2300).contains(&shape.other_media[1]), "{shape:?}");
        let on = |base: &str| {
            bodies
                .iter()
                .filter(|b| media_url(b).starts_with(&format!("{base}/")))
                .count()
        };
        assert_eq!(on(OTHERS[0].0), shape.other_media[0]);
        assert_eq!(on(OTHERS[1].0), shape.other_media[1]);
        let (again, _) = batch_with(10_000, &OTHERS);
        let urls = |bodies: &[Bytes]| bodies.iter().map(media_url).collect::<Vec<_>>();
        assert_eq!(urls(&bodies), urls(&again));
    }

    #[test]
    fn other_hosts_leave_the_shapes_alone() {
        let (all_fast, _) = batch(500);
        let (mixed, _) = batch_with(500, &OTHERS);
        for (a, b) in all_fast.iter().zip(&mixed) {
            let mut a: Value = serde_json::from_slice(a).expect("JSON");
            let mut b: Value = serde_json::from_slice(b).expect("JSON");
            // `started_at` is drawn back from the clock, which moves between the batches.
            for key in ["media_url", "started_at"] {
                a[key] = Value::Null;
                b[key] = Value::Null;
            }
            assert_eq!(a, b);
        }
    }
}
