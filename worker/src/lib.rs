//! The worker: consumes queued calls and lands them in Postgres, acking only after commit;
//! retries what fails for a while, sets aside what cannot be stored, replays it when it can.

pub mod auto_replay;
pub mod consumer;
pub mod failure;
pub mod handler;
pub mod http;
pub mod media;
pub mod metrics;
pub mod operators;
pub mod retry;
pub mod startup;
pub mod store;

pub use startup::Worker;
