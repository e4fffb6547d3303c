//! `shoal-sim`: Shoal's own protocol cores at scale.
//!
//! - [`scenario`]: what to run, from a TOML file (topology, peers, degree, files and replication, queries,
//!   churn, seed).
//! - [`sim`]: the virtual-time engine: the sans-IO search cores of `shoal-proto` (the same code the node
//!   runs) driven by one event queue with per-link latency, polls, and peers leaving and coming back.
//! - [`report`]: figures per run (success, messages per query, peers reached, time to first hit, maintenance
//!   traffic, memory) as JSON and CSV.
//!
//! - [`real`]: real Shoal nodes (libp2p swarms with Kademlia, stores, search drivers) on the in-process
//!   memory transport, in wall-clock time: the structured topology, which has no sans-IO core of ours,
//!   with lookup success, hops, requests and memory per peer.
//! - [`swarm`]: file distribution in virtual time (one seed, N peers, upload caps, the real piece
//!   scheduler), against the textbook bounds.
//! - [`results`] and [`plot`]: the standard experiments behind `docs/RESULTS.md`, with CSV and SVG charts.
//! - [`heap`]: the process's live heap bytes (a counting allocator), for memory per peer.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod heap;
pub mod plot;
pub mod real;
pub mod report;
pub mod results;
pub mod scenario;
pub mod sim;
pub mod swarm;

pub use report::{Report, run};
pub use scenario::Scenario;
