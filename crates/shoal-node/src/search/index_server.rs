//! The index server role (`hybrid`, `shoal index-server`): the share lists other peers registered, answered
//! from like a local index, expired when their peers go quiet, and saved so that a restarted server still
//! answers for them until they expire.

use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use shoal_proto::search::registry::{self, Registry};
use shoal_proto::search::{Hit, IndexEntry, Provider, Query};
use shoal_store::{MAX_LOCAL_HITS, Registration, Store};
use tokio::sync::mpsc;

use crate::blocking::blocking;
use crate::service::Tasks;

/// The registry and the task that saves its changes.
pub(super) struct IndexServer {
    registry: Registry<PeerId>,
    /// Changes go to one saving task, so that they reach SQLite in order.
    saver: mpsc::Sender<Vec<Registration>>,
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl IndexServer {
    /// A server that forgets peers not heard from for `expire`; it picks up the lists it had before a
    /// restart (they still expire on time).
    pub(super) async fn start(expire: Duration, store: &Arc<Store>, tasks: &Tasks) -> Self {
        let mut registry = Registry::new(registry::Config { expire_after: expire, ..registry::Config::default() });
        restore(&mut registry, store).await;
        let (saver, rx) = mpsc::channel(64);
        tasks.spawn(save(store.clone(), rx));
        Self { registry, saver }
    }

    /// A peer sent (part of) its list.
    pub(super) fn on_publish(&mut self, from: PeerId, reset: bool, addrs: Vec<Vec<u8>>, entries: Vec<IndexEntry>) {
        if self.registry.on_publish(from, reset, addrs, entries, Instant::now()) == registry::Outcome::Full {
            tracing::warn!(peer = %from, "index full: a peer's share list was refused");
        }
    }

    /// A peer withdrew ids.
    pub(super) fn on_withdraw(&mut self, from: &PeerId, ids: &[[u8; 32]]) {
        self.registry.on_withdraw(from, ids, Instant::now());
    }

    /// Forgets quiet peers and saves what changed.
    pub(super) fn tick(&mut self, now: Instant) {
        let gone = self.registry.expire(now);
        if !gone.is_empty() {
            tracing::info!(peers = gone.len(), "index: forgot peers not heard from");
        }
        let changed = self.registry.take_dirty(now);
        if changed.is_empty() {
            return;
        }
        let unix_ms = unix_ms();
        let rows = changed
            .into_iter()
            .map(|(p, s)| match s {
                Some((saved, age)) => Registration {
                    peer: p.to_bytes(),
                    saved: postcard::to_stdvec(&saved).ok(),
                    heard_at_ms: unix_ms - age.as_millis() as i64,
                },
                None => Registration { peer: p.to_bytes(), saved: None, heard_at_ms: unix_ms },
            })
            .collect();
        if self.saver.try_send(rows).is_err() {
            tracing::warn!("index: saving falls behind; a restart may lose recent changes");
        }
    }

    /// What the registered lists have for `query`.
    pub(super) fn search(&self, query: &Query) -> Vec<Hit> {
        self.registry
            .search(query, MAX_LOCAL_HITS)
            .into_iter()
            .map(|(p, addrs, e)| Hit {
                id: e.id,
                name: e.name.clone(),
                size: e.size,
                collection: e.collection,
                provider: Provider { peer: p.to_bytes(), addrs: addrs.to_vec() },
            })
            .collect()
    }

    /// Peers registered.
    pub(super) fn peers(&self) -> usize {
        self.registry.peers()
    }

    /// Names they list.
    pub(super) fn entries(&self) -> usize {
        self.registry.entries()
    }
}

async fn restore(r: &mut Registry<PeerId>, store: &Arc<Store>) {
    let s = store.clone();
    let rows = match blocking(move || s.load_registered()).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "index: cannot read the saved registrations; starting empty");
            return;
        }
    };
    let (now, unix) = (Instant::now(), unix_ms());
    let n = rows.len();
    for Registration { peer, saved, heard_at_ms } in rows {
        let saved = saved.unwrap_or_default();
        let (Ok(peer), Ok(saved)) = (PeerId::from_bytes(&peer), postcard::from_bytes::<registry::Saved>(&saved)) else {
            continue;
        };
        r.restore(peer, saved, Duration::from_millis(unix.saturating_sub(heard_at_ms).max(0) as u64), now);
    }
    tracing::info!(saved = n, restored = r.peers(), "index: registrations restored");
}

async fn save(store: Arc<Store>, mut rx: mpsc::Receiver<Vec<Registration>>) {
    while let Some(rows) = rx.recv().await {
        let s = store.clone();
        if let Err(e) = blocking(move || s.save_registered(&rows)).await {
            tracing::warn!(error = %e, "index: cannot save registrations");
        }
    }
}
