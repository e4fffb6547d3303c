//! The `registry` table: on an index server (`hybrid` topology), the share lists other peers registered,
//! saved so that a restarted server still answers for them until they expire.

use rusqlite::params;

use crate::catalog::Catalog;
use crate::{Store, StoreError};

/// An index server's saved registration of one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// Peer id bytes.
    pub peer: Vec<u8>,
    /// The encoded registration; `None` when saving means "delete it".
    pub saved: Option<Vec<u8>>,
    /// When the peer was last heard from, Unix milliseconds.
    pub heard_at_ms: i64,
}

impl Catalog {
    pub(crate) fn save_registered(&self, rows: &[Registration]) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            for Registration { peer, saved, heard_at_ms } in rows {
                match saved {
                    Some(s) => tx.execute(
                        "INSERT OR REPLACE INTO registry (peer, saved, heard_at_ms) VALUES (?1, ?2, ?3)",
                        params![peer, s, heard_at_ms],
                    )?,
                    None => tx.execute("DELETE FROM registry WHERE peer = ?1", params![peer])?,
                };
            }
            tx.commit()
        })
    }

    pub(crate) fn load_registered(&self) -> Result<Vec<Registration>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT peer, saved, heard_at_ms FROM registry")?;
            let rows = st.query_map([], |r| {
                Ok(Registration { peer: r.get(0)?, saved: Some(r.get(1)?), heard_at_ms: r.get(2)? })
            })?;
            rows.collect()
        })
    }
}

impl Store {
    /// An index server's registrations: saves or deletes (`saved: None`) each, in one transaction.
    pub fn save_registered(&self, rows: &[Registration]) -> Result<(), StoreError> {
        self.catalog.save_registered(rows)
    }

    /// Every saved registration.
    pub fn load_registered(&self) -> Result<Vec<Registration>, StoreError> {
        self.catalog.load_registered()
    }
}
