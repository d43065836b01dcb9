//! Chat bodies for the mixed phase, built before any timing starts: a chat of a bound
//! operator with a client, four to twelve parts taking turns, as a chat connector posts a
//! finished chat. Seeded, so two runs send the same shapes.

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const LINES: [&str; 6] = [
    "Здравствуйте, подскажите статус заказа",
    "Одну минуту, проверяю информацию по вашему заказу.",
    "The courier was supposed to arrive yesterday.",
    "Заказ передан в доставку, курьер будет сегодня до 18:00.",
    "Thank you!",
    "Спасибо за обращение, хорошего дня!",
];

pub fn generate(n: usize, operators: &[String], uid_prefix: &str, seed: u64) -> Vec<Bytes> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let operator = operators.choose(&mut rng).expect("operators are bound");
            let uid = format!("{uid_prefix}-{i}");
            let parts: Vec<Value> = (0..rng.random_range(4..=12))
                .map(|p| {
                    let author = if p % 2 == 0 {
                        json!({"type": "client", "id": null})
                    } else {
                        json!({"type": "operator", "id": operator})
                    };
                    json!({
                        "communication_part_id": format!("{uid}-{p}"),
                        "author": author,
                        "body": LINES.choose(&mut rng).expect("lines"),
                        "created_at": format!("2024-05-01T12:{:02}:{:02}.1234567+03:00", p, rng.random_range(0..60)),
                        "content_type": "text/plain",
                    })
                })
                .collect();
            let body = json!({
                "uid": uid,
                "operator_id": operator,
                "communication_type": "chat",
                "client_id": format!("client-{}", rng.random_range(0..5000)),
                "title": "Доставка",
                "source": "chat",
                "status": "closed",
                "direction": "incoming",
                "started_at": "2024-05-01T12:00:00+03:00",
                "nps": rng.random_range(0..=10),
                "custom_fields": {"chat_id": uid},
                "communication_parts": parts,
            });
            Bytes::from(serde_json::to_vec(&body).expect("a chat serialises"))
        })
        .collect()
}
