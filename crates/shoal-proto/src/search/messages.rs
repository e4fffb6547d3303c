//! The messages of `/shoal/search/1`, and their limits.
//!
//! Queries and hits are small, so they are postcard frames ([`crate::wire`]) of at most [`MAX_FRAME`] bytes;
//! after decoding, [`SearchMsg::validate`] checks the limits that postcard cannot (text and name lengths, how
//! many hits and addresses). A peer is named by its libp2p peer id bytes and its addresses by multiaddr bytes,
//! so this crate needs no libp2p.

use serde::{Deserialize, Serialize};

/// libp2p protocol id.
pub const PROTOCOL: &str = "/shoal/search/1";

/// Largest frame.
pub const MAX_FRAME: usize = 64 * 1024;

/// Longest query text, bytes.
pub const MAX_QUERY_TEXT: usize = 256;

/// Longest extension filter, bytes.
pub const MAX_EXT: usize = 16;

/// Longest name in a hit, bytes.
pub const MAX_NAME: usize = 255;

/// Most hits in one message.
pub const MAX_HITS_PER_MSG: usize = 64;

/// Most addresses given for a provider.
pub const MAX_ADDRS: usize = 4;

/// Longest peer id or address, bytes.
pub const MAX_ADDR_BYTES: usize = 96;

/// Most entries in one `Publish`.
pub const MAX_PUBLISH_ENTRIES: usize = 128;

/// Most ids in one `Withdraw`.
pub const MAX_WITHDRAW_IDS: usize = 1024;

/// Most supernodes listed in one `Role`.
pub const MAX_ROLE_SUPERS: usize = 16;

/// Highest TTL any peer forwards (Gnutella used 7).
pub const MAX_TTL: u8 = 7;

/// A content id on the wire.
pub type WireId = [u8; 32];

/// What a search looks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Want {
    /// Names in which every word is a prefix of a word of the name.
    Words(String),
    /// Peers that have this content id (provider lookup).
    Id(WireId),
}

/// Optional filters on hits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Filters {
    /// Smallest size, bytes.
    pub min_size: Option<u64>,
    /// Largest size, bytes.
    pub max_size: Option<u64>,
    /// File extension without the dot, case-insensitive (`zip`).
    pub ext: Option<String>,
}

/// A query.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Query {
    /// What is wanted.
    pub want: Want,
    /// Filters.
    pub filters: Filters,
}

impl Query {
    /// A query for words, without filters.
    pub fn words(text: impl Into<String>) -> Self {
        Self { want: Want::Words(text.into()), filters: Filters::default() }
    }

    /// A provider lookup for `id`.
    pub fn id(id: WireId) -> Self {
        Self { want: Want::Id(id), filters: Filters::default() }
    }

    /// Checks the limits; a query that breaks one is dropped unanswered.
    pub fn validate(&self) -> Result<(), MessageError> {
        if let Want::Words(t) = &self.want
            && (t.len() > MAX_QUERY_TEXT || super::keywords::words(t).is_empty())
        {
            return Err(MessageError::BadQuery);
        }
        if self.filters.ext.as_ref().is_some_and(|e| e.len() > MAX_EXT) {
            return Err(MessageError::BadQuery);
        }
        Ok(())
    }
}

/// A peer that has something, and where to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Provider {
    /// Peer id bytes.
    pub peer: Vec<u8>,
    /// Multiaddr bytes, at most [`MAX_ADDRS`].
    pub addrs: Vec<Vec<u8>>,
}

/// One thing found at one peer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Hit {
    /// Content id.
    pub id: WireId,
    /// File or folder name.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// True for a folder (a collection).
    pub collection: bool,
    /// Who has it.
    pub provider: Provider,
}

impl Hit {
    /// Checks the limits.
    pub fn validate(&self) -> Result<(), MessageError> {
        let p = &self.provider;
        if self.name.len() > MAX_NAME
            || p.peer.len() > MAX_ADDR_BYTES
            || p.addrs.len() > MAX_ADDRS
            || p.addrs.iter().any(|a| a.len() > MAX_ADDR_BYTES)
        {
            return Err(MessageError::BadHit);
        }
        Ok(())
    }
}

impl Filters {
    /// True when a name of `size` bytes passes the filters.
    pub fn accept(&self, name: &str, size: u64) -> bool {
        self.min_size.is_none_or(|m| size >= m)
            && self.max_size.is_none_or(|m| size <= m)
            && self.ext.as_ref().is_none_or(|e| name.rsplit_once('.').is_some_and(|(_, x)| x.eq_ignore_ascii_case(e)))
    }
}

/// One shared name as a peer lists it to an index server (`hybrid`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Content id.
    pub id: WireId,
    /// File or folder name.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// True for a folder.
    pub collection: bool,
}

/// A message between two peers on `/shoal/search/1`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SearchMsg {
    /// Asks the receiver to become an overlay neighbour.
    Join,
    /// Answer to [`SearchMsg::Join`].
    Joined {
        /// False when the receiver has no room (it already has as many neighbours as it wants).
        accepted: bool,
    },
    /// The sender stops being a neighbour.
    Leave,
    /// A query. A receiver answers from its own index and, while `ttl > 1`, forwards it with `ttl - 1`.
    Query {
        /// Random id chosen by the originator; peers drop a query id they have seen.
        qid: u64,
        /// Hops left, at most [`MAX_TTL`].
        ttl: u8,
        /// Hops taken so far.
        hops: u8,
        /// What is wanted.
        query: Query,
    },
    /// Hits for query `qid`, travelling back along the path the query came.
    Hits {
        /// Query id.
        qid: u64,
        /// At most [`MAX_HITS_PER_MSG`].
        hits: Vec<Hit>,
    },
    /// To an index server (`hybrid`): these are among my shares, reach me at `addrs`. With `reset`, the
    /// server forgets what it had from me first (the start of a full list, sent on connect and as refresh).
    Publish {
        /// Start of a full list.
        reset: bool,
        /// Where to reach the sender, at most [`MAX_ADDRS`].
        addrs: Vec<Vec<u8>>,
        /// At most [`MAX_PUBLISH_ENTRIES`].
        entries: Vec<IndexEntry>,
    },
    /// To an index server: these are no longer shared.
    Withdraw {
        /// At most [`MAX_WITHDRAW_IDS`].
        ids: Vec<WireId>,
    },
    /// Supernode topology: what the sender is, and supernodes it knows (for leaves to find a home).
    Role {
        /// True for a supernode.
        supernode: bool,
        /// Supernodes the sender knows, at most [`MAX_ROLE_SUPERS`].
        supers: Vec<Provider>,
    },
    /// Leaf to supernode: please carry my searches and route queries to me.
    Attach,
    /// Answer to [`SearchMsg::Attach`]: false when the supernode has no room or is not a supernode.
    Attached {
        /// Accepted.
        accepted: bool,
    },
    /// Leaf to its supernodes: its keyword digest ([`super::digest::DIGEST_BYTES`] bytes).
    Digest {
        /// The Bloom filter's bits.
        bits: Vec<u8>,
    },
}

/// A message broke a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// A query without words, or with a too long text or extension.
    #[error("query without words or over the size limits ({MAX_QUERY_TEXT} bytes of text, {MAX_EXT} of extension)")]
    BadQuery,
    /// A hit with a too long name or too many or too long addresses.
    #[error("hit over the size limits")]
    BadHit,
    /// A `Publish` or `Withdraw` over its limits.
    #[error("index update over the limits ({MAX_PUBLISH_ENTRIES} entries, {MAX_WITHDRAW_IDS} ids)")]
    TooManyEntries,
    /// A `Role` listing too many or too long entries.
    #[error("role message over the limits ({MAX_ROLE_SUPERS} supernodes)")]
    BadRole,
    /// A digest of the wrong size.
    #[error("digest of the wrong size (must be {} bytes)", super::digest::DIGEST_BYTES)]
    BadDigest,
    /// Too many hits in one message.
    #[error("more than {MAX_HITS_PER_MSG} hits in one message")]
    TooManyHits,
}

impl SearchMsg {
    /// Checks the limits postcard cannot (the frame size is checked before decoding).
    pub fn validate(&self) -> Result<(), MessageError> {
        match self {
            Self::Query { query, .. } => query.validate(),
            Self::Hits { hits, .. } => {
                if hits.len() > MAX_HITS_PER_MSG {
                    return Err(MessageError::TooManyHits);
                }
                hits.iter().try_for_each(Hit::validate)
            }
            Self::Publish { addrs, entries, .. } => {
                if entries.len() > MAX_PUBLISH_ENTRIES
                    || addrs.len() > MAX_ADDRS
                    || addrs.iter().any(|a| a.len() > MAX_ADDR_BYTES)
                    || entries.iter().any(|e| e.name.len() > MAX_NAME)
                {
                    return Err(MessageError::TooManyEntries);
                }
                Ok(())
            }
            Self::Withdraw { ids } if ids.len() > MAX_WITHDRAW_IDS => Err(MessageError::TooManyEntries),
            Self::Role { supers, .. } => {
                if supers.len() > MAX_ROLE_SUPERS
                    || supers.iter().any(|p| {
                        p.peer.len() > MAX_ADDR_BYTES
                            || p.addrs.len() > MAX_ADDRS
                            || p.addrs.iter().any(|a| a.len() > MAX_ADDR_BYTES)
                    })
                {
                    return Err(MessageError::BadRole);
                }
                Ok(())
            }
            Self::Digest { bits } if bits.len() != super::digest::DIGEST_BYTES => Err(MessageError::BadDigest),
            Self::Join
            | Self::Joined { .. }
            | Self::Leave
            | Self::Withdraw { .. }
            | Self::Attach
            | Self::Attached { .. }
            | Self::Digest { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire;

    fn hit(name: &str) -> Hit {
        Hit {
            id: [7; 32],
            name: name.into(),
            size: 42,
            collection: false,
            provider: Provider { peer: vec![1; 38], addrs: vec![vec![4, 127, 0, 0, 1]] },
        }
    }

    #[test]
    fn round_trip_and_limits() {
        let q = SearchMsg::Query { qid: 9, ttl: 3, hops: 1, query: Query::words("holiday photos") };
        let frame = wire::encode(&q, MAX_FRAME).unwrap();
        let (back, _): (SearchMsg, _) = wire::decode(&frame, MAX_FRAME).unwrap();
        assert_eq!(back, q);
        assert!(back.validate().is_ok());

        assert_eq!(Query::words("").validate(), Err(MessageError::BadQuery));
        assert_eq!(Query::words("-- !").validate(), Err(MessageError::BadQuery));
        assert_eq!(Query::words("x".repeat(MAX_QUERY_TEXT + 1)).validate(), Err(MessageError::BadQuery));
        let full = SearchMsg::Hits { qid: 1, hits: vec![hit("a"); MAX_HITS_PER_MSG] };
        assert!(full.validate().is_ok());
        assert!(wire::encode(&full, MAX_FRAME).is_ok(), "a full hits message fits in one frame");
        let over = SearchMsg::Hits { qid: 1, hits: vec![hit("a"); MAX_HITS_PER_MSG + 1] };
        assert_eq!(over.validate(), Err(MessageError::TooManyHits));
        assert_eq!(hit(&"n".repeat(MAX_NAME + 1)).validate(), Err(MessageError::BadHit));
    }
}
