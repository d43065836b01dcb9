//! What gateway, worker and admin CLI share: the contract, the domain, config, queues,
//! database access and telemetry.

pub mod broker;
pub mod config;
pub mod contract;
pub mod domain;
pub mod message;
pub mod metrics;
pub mod port_ranges;
pub mod probe_work;
pub mod store;
pub mod telemetry;
pub mod text_message;
pub mod token;
pub mod trace_context;
