//! The worker: consumes queued calls and lands them in Postgres, acking only after commit.

pub mod consumer;
pub mod handler;
pub mod media;
pub mod operators;
pub mod startup;
pub mod store;

pub use startup::Worker;
