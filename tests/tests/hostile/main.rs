//! Hostile input, end to end: what a careless or malicious sender can send, and that each case
//! is answered as the contract says without losing a call, half-writing one or taking the
//! service down. One module per surface.

mod bodies;
mod connections;
mod dead_letters;
mod media_urls;
