//! Search: how a peer finds names and providers, in the topologies that need a protocol of their own.
//!
//! - [`keywords`]: how names become words (case and accents folded), the same on every peer.
//! - [`messages`]: what travels on `/shoal/search/1` (queries, hits, overlay links) and the limits.
//! - [`flood`]: the sans-IO router of the `pure` topology (TTL flooding with a seen-cache, reverse-path hits,
//!   expanding ring, abuse limits), also used for direct one-hop queries in the other topologies.
//! - [`policy`]: the [`Topology`] setting and what follows from it (how a search starts, what a peer keeps,
//!   what it tells index servers), shared by the node and the simulator.
//! - [`registry`]: the share lists an index server keeps (`hybrid`): publish, withdraw, expiry, matching.
//! - [`supernode`]: roles, election, leaves and their keyword [`digest`]s (`supernode`).
//!
//! The `structured` topology needs no core here: Kademlia is the index (see `shoal-node`'s search driver).

pub mod digest;
pub mod flood;
pub mod keywords;
pub mod messages;
pub mod policy;
pub mod registry;
pub mod supernode;

pub use flood::{Flood, SearchId, SearchStats};
pub use messages::{Filters, Hit, IndexEntry, MAX_TTL, PROTOCOL, Provider, Query, SearchMsg, Want};
pub use policy::{Route, Topology};
