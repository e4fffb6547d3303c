//! A leaf's keyword digest for its supernode: a Bloom filter, like Gnutella's QRP table.
//!
//! It holds every prefix (2 to [`MAX_PREFIX`] characters) of every keyword of the leaf's shared names, and
//! every content id it can serve. A supernode passes a query to a leaf only when the digest says every
//! query word (cut to [`MAX_PREFIX`]) may be there; false positives cost one wasted message, and there are
//! no false negatives. [`DIGEST_BYTES`] bytes with three hash functions keep false positives under 1% up to
//! about 5,000 inserted prefixes.

use super::keywords;
use super::messages::{Query, Want, WireId};

/// Size of a digest on the wire.
pub const DIGEST_BYTES: usize = 8192;

/// Longest prefix inserted; longer query words are cut to it before the check.
pub const MAX_PREFIX: usize = 16;

const BITS: u64 = (DIGEST_BYTES * 8) as u64;

/// A keyword digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    bits: Vec<u8>,
}

impl Default for Digest {
    fn default() -> Self {
        Self { bits: vec![0; DIGEST_BYTES] }
    }
}

/// FNV-1a, seeded: three of them are the filter's hash functions.
fn fnv(seed: u64, data: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x1000_0000_01b3);
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x1000_0000_01b3);
    }
    h
}

impl Digest {
    /// An empty digest.
    pub fn new() -> Self {
        Self::default()
    }

    /// A digest received from a peer; `None` unless it has exactly [`DIGEST_BYTES`] bytes.
    pub fn from_bytes(bits: Vec<u8>) -> Option<Self> {
        (bits.len() == DIGEST_BYTES).then_some(Self { bits })
    }

    /// The bytes to send.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bits
    }

    fn positions(item: &[u8]) -> [u64; 3] {
        [fnv(1, item) % BITS, fnv(2, item) % BITS, fnv(3, item) % BITS]
    }

    fn insert(&mut self, item: &[u8]) {
        for p in Self::positions(item) {
            self.bits[(p / 8) as usize] |= 1 << (p % 8);
        }
    }

    fn contains(&self, item: &[u8]) -> bool {
        Self::positions(item).iter().all(|p| self.bits[(p / 8) as usize] & (1 << (p % 8)) != 0)
    }

    /// Adds the keyword prefixes of a name.
    pub fn insert_name(&mut self, name: &str) {
        // Every word, stop words too: a query holding one must still pass.
        for w in keywords::words(name) {
            for n in 2..=w.chars().count().min(MAX_PREFIX) {
                self.insert(keywords::prefix(&w, n).as_bytes());
            }
        }
    }

    /// Adds a content id.
    pub fn insert_id(&mut self, id: &WireId) {
        self.insert(id);
    }

    /// True when `query` may match something behind this digest.
    pub fn matches(&self, query: &Query) -> bool {
        match &query.want {
            Want::Id(id) => self.contains(id),
            Want::Words(text) => {
                let words = keywords::words(text);
                // One-letter words are not indexed: they cannot narrow the routing down.
                words.iter().filter(|w| w.chars().nth(1).is_some()).all(|w| {
                    let p = keywords::prefix(w, MAX_PREFIX);
                    self.contains(p.as_bytes())
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn prefixes_and_ids_match_and_others_do_not() {
        let mut d = Digest::new();
        d.insert_name("Holiday Photos 2024.zip");
        d.insert_id(&[5; 32]);
        for q in ["holid pho", "HOLIDAY", "photos 2024", "ho", "holidays-are-long"] {
            let expect = q != "holidays-are-long";
            assert_eq!(d.matches(&Query::words(q)), expect, "{q}");
        }
        assert!(d.matches(&Query::id([5; 32])));
        assert!(!d.matches(&Query::id([6; 32])));
        assert!(!d.matches(&Query::words("concert")));
        assert!(Digest::from_bytes(vec![0; 3]).is_none());
        assert_eq!(Digest::from_bytes(d.as_bytes().to_vec()), Some(d));
    }

    proptest! {
        /// No false negatives: whatever the names, a query that matches one of them passes the digest.
        #[test]
        fn no_false_negatives(names in proptest::collection::vec("[a-zé]{1,12}( [a-z0-9]{1,12}){0,3}", 1..20),
                              pick in any::<prop::sample::Index>(), cut in 1usize..14) {
            let mut d = Digest::new();
            for n in &names {
                d.insert_name(n);
            }
            let name = &names[pick.index(names.len())];
            let words = keywords::words(name);
            let q: Vec<String> = words.iter().map(|w| keywords::prefix(w, cut).to_string()).collect();
            let q = q.join(" ");
            if keywords::matches(&q, name) {
                prop_assert!(d.matches(&Query::words(q.clone())), "{q} vs {name}");
            }
        }
    }
}
