//! `shoal-sim`: Shoal's own protocol cores at scale.
//!
//! - [`scenario`]: what to run, from a TOML file (topology, peers, degree, files and replication, queries,
//!   churn, seed).
//! - [`sim`]: the virtual-time engine: the sans-IO search cores of `shoal-proto` (the same code the node
//!   runs) driven by one event queue with per-link latency, polls, and peers leaving and coming back.
//! - [`report`]: figures per run (success, messages per query, peers reached, time to first hit, maintenance
//!   traffic, memory) as JSON and CSV.
//!
//! - [`swarm`]: file distribution in virtual time (one seed, N peers, upload caps, the real piece
//!   scheduler), against the textbook bounds.
//!
//! Real libp2p peers in one process (the memory transport) are not built yet.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod report;
pub mod scenario;
pub mod sim;
pub mod swarm;

pub use report::{Report, run};
pub use scenario::Scenario;
