//! Every input of the committed fuzz corpus, replayed through its target's property: what
//! the fuzzer once found (and the seeds) stays a regression test without a fuzzer.

use std::fs;
use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus")
        .join(target);
    let mut inputs = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a corpus entry").path();
        let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(panic) = std::panic::catch_unwind(|| check(&data)) {
            std::panic::resume_unwind(Box::new(format!(
                "{} breaks the {target} property: {panic:?}",
                path.display()
            )));
        }
        inputs += 1;
    }
    assert!(inputs > 0, "the {target} corpus is empty");
}

#[test]
fn the_call_body_corpus_holds() {
    replay("call_body", fuzz_checks::call_body);
}

#[test]
fn the_queue_message_corpus_holds() {
    replay("queue_message", fuzz_checks::queue_message);
}
