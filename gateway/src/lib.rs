//! The gateway: authenticates, validates, and answers 2xx only once the broker confirmed.

pub mod cache;
pub mod connection;
pub mod database_circuit;
pub mod grouping;
pub mod http;
pub mod metrics;
pub mod operator_check;
pub mod queued;
pub mod rate_limit;
pub mod startup;
pub mod state;

pub use startup::Application;
