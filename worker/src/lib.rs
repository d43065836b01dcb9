//! The worker: two stages, each consuming a queue of its own. The calls stage lands queued
//! calls in Postgres, acking only after commit, retries what fails for a while, sets aside
//! what cannot be stored and replays it when it can; it queues each stored call's media
//! probe. The probe stage probes media URLs and writes the results back.

pub mod auto_replay;
pub mod calls;
pub mod failure;
pub mod http;
pub mod media;
pub mod metrics;
pub mod operators;
pub mod probes;
pub mod retry;
pub mod session;
pub mod startup;
pub mod texts;

pub use startup::Worker;
