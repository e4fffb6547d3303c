//! [`Messaging`]: the messaging service on the node's seam (see [`crate::service`]), and its shared state.
//!
//! One [`Shared`] holds what every task of the service reads: the signing key, the store, the network,
//! and one [`State`] behind a mutex (topic logs, the outbox, the letters held for others, the inbox's
//! memory of what arrived), never held across an `.await`. Long-lived tasks: the gossip judge
//! ([`super::topics::judge`]), a ticker (topic logs ask for missing parents, the outbox retries and
//! places copies, held letters expire) and a watcher of connections (collect our letters from every peer
//! we meet; in `structured`, look up the peers closest to our id at start, where holders put our letters).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use libp2p::{PeerId, Stream, StreamProtocol};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use shoal_net::Network;
use shoal_proto::messaging::delivery::{DeliveryConfig, Holding, HoldingConfig, Inbox, Outbox};
use shoal_proto::messaging::direct::Sealed;
use shoal_proto::messaging::group::GroupKey;
use shoal_proto::messaging::{AuthorKey, MsgId, TopicId};
use shoal_store::{MessageKind, MessageRecord, Store};

use super::{MessageView, MessagingCounters, MessagingError, TopicView, ids, letters, topics};
use crate::blocking::blocking;
use crate::events::Events;
use crate::metrics::{counter, gauge};
use crate::service::{Context, PeerSlots, Service, Start, Tasks};
use crate::{NodeConfig, NodeError};

/// Messaging streams one peer may have open to us at once.
const STREAMS_PER_PEER: usize = 8;
/// How often the logs, the outbox and the holding are polled.
const TICK: Duration = Duration::from_millis(250);

/// One followed topic.
pub(crate) struct Followed {
    pub(crate) name: String,
    /// A private topic's key: its posts' text is sealed with it.
    pub(crate) key: Option<GroupKey>,
    pub(crate) log: shoal_proto::messaging::TopicLog,
}

/// A letter written here, not yet delivered.
pub(crate) struct Outgoing {
    pub(crate) sealed: Sealed,
    /// The letter's own id (what the history row is keyed by).
    pub(crate) letter: MsgId,
    pub(crate) since: Instant,
}

/// Everything that changes, behind one mutex.
pub(crate) struct State {
    pub(crate) topics: HashMap<TopicId, Followed>,
    pub(crate) by_gossip: HashMap<String, TopicId>,
    pub(crate) rates: topics::Rates,
    /// When each (peer, topic) was last refilled, bounded with the rates.
    pub(crate) refilled: HashMap<(PeerId, TopicId), Instant>,
    pub(crate) outbox: Outbox<PeerId>,
    /// Keyed by the sealed letter's id (receipts name it).
    pub(crate) outgoing: HashMap<MsgId, Outgoing>,
    pub(crate) holding: Holding,
    pub(crate) inbox: Inbox,
    /// When we last collected from each peer.
    pub(crate) collected: HashMap<PeerId, Instant>,
    /// Recipients of letters we hold: when to knock next, and the wait after that.
    pub(crate) knocks: HashMap<AuthorKey, (Instant, Duration)>,
    /// Letters whose copies are being placed now (see [`super::placing`]).
    pub(crate) placing: std::collections::HashSet<MsgId>,
}

/// What the service's tasks share.
pub(crate) struct Shared {
    pub(crate) me: SigningKey,
    pub(crate) my_key: AuthorKey,
    pub(crate) peer_id: PeerId,
    pub(crate) store: Arc<Store>,
    pub(crate) net: Network,
    pub(crate) events: Events,
    pub(crate) tasks: Tasks,
    pub(crate) config: Arc<NodeConfig>,
    pub(crate) ctx: Context,
    pub(crate) state: Mutex<State>,
    pub(crate) counters: Mutex<MessagingCounters>,
    pub(crate) delivery_seconds: prometheus_client::metrics::histogram::Histogram,
}

impl Shared {
    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        shoal_store::lock(&self.state)
    }

    pub(crate) fn count(&self, f: impl FnOnce(&mut MessagingCounters)) {
        f(&mut shoal_store::lock(&self.counters));
    }

    /// A stored message as people see it.
    pub(crate) fn view(&self, m: &MessageRecord, contacts: &HashMap<String, String>) -> MessageView {
        let author = ids::peer_text(&m.author);
        let conversation = match m.kind {
            MessageKind::Post => {
                let st = self.state();
                st.topics.get(&TopicId(m.conversation)).map_or_else(|| ids::hex(&m.conversation), |t| t.name.clone())
            }
            MessageKind::Letter => {
                let peer = ids::peer_text(&m.conversation);
                contacts.get(&peer).cloned().unwrap_or(peer)
            }
        };
        MessageView {
            id: ids::hex(&m.id),
            kind: match m.kind {
                MessageKind::Post => "post",
                MessageKind::Letter => "letter",
            }
            .into(),
            conversation,
            author_name: contacts.get(&author).cloned(),
            author,
            time_ms: m.time_ms,
            clock: m.clock,
            gap: m.gap,
            text: m.text.clone(),
            status: m.status.clone(),
            mine: m.author == self.my_key,
        }
    }

    /// Peer id -> petname.
    pub(crate) async fn contacts(&self) -> HashMap<String, String> {
        let store = self.store.clone();
        blocking(move || store.contacts()).await.unwrap_or_default().into_iter().map(|(n, p)| (p, n)).collect()
    }

    /// Saves messages on the blocking pool and puts the new ones on the event feed.
    pub(crate) async fn save(&self, records: Vec<MessageRecord>) {
        if records.is_empty() {
            return;
        }
        let store = self.store.clone();
        let saved = blocking(move || {
            let mut new = Vec::new();
            for r in records {
                if store.save_message(&r)? {
                    new.push(r);
                }
            }
            Ok::<_, shoal_store::StoreError>(new)
        })
        .await;
        match saved {
            Ok(new) => {
                let contacts = self.contacts().await;
                for r in new {
                    self.events.emit(super::Event::Message(self.view(&r, &contacts)));
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot save messages"),
        }
    }
}

/// The messaging service.
pub struct Messaging {
    shared: Arc<Shared>,
    inbound: PeerSlots,
}

impl Start for Messaging {
    async fn start(ctx: Context) -> Result<Self, NodeError> {
        let me = ids::signing_key(&ctx.identity)?;
        let my_key = me.verifying_key().to_bytes();
        let delivery = DeliveryConfig::default();
        let state = State {
            topics: HashMap::new(),
            by_gossip: HashMap::new(),
            rates: topics::Rates::default(),
            refilled: HashMap::new(),
            outbox: Outbox::new(delivery.clone()),
            outgoing: HashMap::new(),
            holding: Holding::new(HoldingConfig::default()),
            inbox: Inbox::new(delivery.keep_for, 100_000),
            collected: HashMap::new(),
            knocks: HashMap::new(),
            placing: Default::default(),
        };
        let shared = Arc::new(Shared {
            me,
            my_key,
            peer_id: ctx.net.peer_id(),
            store: ctx.store.clone(),
            net: ctx.net.clone(),
            events: ctx.events.clone(),
            tasks: ctx.tasks.clone(),
            config: ctx.config.clone(),
            ctx: ctx.clone(),
            state: Mutex::new(state),
            counters: Mutex::default(),
            delivery_seconds: ctx.metrics.letter_delivery_seconds.clone(),
        });
        let gossip =
            ctx.net.gossip_events().ok_or_else(|| NodeError::Task("another service took the topic messages".into()))?;
        topics::resume(&shared).await?;
        letters::resume(&shared).await?;
        ctx.tasks.spawn(topics::judge(shared.clone(), gossip));
        ctx.tasks.spawn(letters::watch_connections(shared.clone()));
        let s = shared.clone();
        ctx.tasks.spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                topics::tick(&s).await;
                letters::tick(&s).await;
            }
        });
        ctx.metrics.register_collector(MessagingMetrics(shared.clone()));
        Ok(Self { shared, inbound: PeerSlots::new(STREAMS_PER_PEER) })
    }
}

impl Service for Messaging {
    fn name(&self) -> &'static str {
        "messages"
    }

    fn protocols(&self) -> Vec<StreamProtocol> {
        vec![super::PROTOCOL]
    }

    fn accept(&self, _protocol: &StreamProtocol, peer: PeerId, stream: Stream) {
        let Some(slot) = self.inbound.take(peer) else {
            tracing::debug!(%peer, "peer has {STREAMS_PER_PEER} messaging streams open already; closing the new one");
            return;
        };
        let shared = self.shared.clone();
        self.shared.tasks.spawn(async move {
            let _slot = slot;
            super::streams::serve(shared, super::streams::Link::accepted(peer, stream)).await;
        });
    }

    fn status(&self) -> serde_json::Value {
        serde_json::to_value(self.counters()).unwrap_or_default()
    }
}

impl Messaging {
    /// Follows a public topic by name, or a private one by its key (hex, from an invite) under a name of
    /// our choosing; returns it. Joining one followed already returns it as it is.
    pub async fn join(&self, name: &str, key: Option<&str>) -> Result<TopicView, NodeError> {
        topics::join(&self.shared, name, key).await
    }

    /// Starts a new private topic named `name` (here; each member names it as it likes) with a fresh
    /// key, and follows it; the returned view carries the key to give to members.
    pub async fn create_private(&self, name: &str) -> Result<TopicView, NodeError> {
        topics::create_private(&self.shared, name).await
    }

    /// Stops following a topic (its history stays); whether it was followed.
    pub async fn leave(&self, topic: &str) -> Result<bool, NodeError> {
        topics::leave(&self.shared, topic).await
    }

    /// The topics followed.
    pub async fn topics(&self) -> Vec<TopicView> {
        topics::list(&self.shared).await
    }

    /// Posts `text` to a followed topic (by name or id).
    pub async fn post(&self, topic: &str, text: &str) -> Result<MessageView, NodeError> {
        topics::post(&self.shared, topic, text).await
    }

    /// A topic's posts in the shared order, after the post `after` (an id from an earlier page), at most
    /// `limit`.
    pub async fn history(&self, topic: &str, after: Option<&str>, limit: usize) -> Result<Vec<MessageView>, NodeError> {
        let id = topics::resolve(&self.shared, topic)?;
        self.page(id.0, after, limit).await
    }

    /// Writes a letter to a peer (its id, or a contact's name), sealed to its key; delivered directly
    /// if it is reachable, else through holders.
    pub async fn send(&self, to: &str, text: &str) -> Result<MessageView, NodeError> {
        let peer = self.resolve_peer(to).await?;
        letters::send(&self.shared, peer, text).await
    }

    /// The letters exchanged with a peer (its id or a contact's name), oldest first.
    pub async fn letters_with(
        &self,
        peer: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<MessageView>, NodeError> {
        let peer = self.resolve_peer(peer).await?;
        let key = ids::author_of(&peer).ok_or_else(|| MessagingError::NoKey(peer.to_string()))?;
        self.page(key, after, limit).await
    }

    /// Letters sent and received, newest first.
    pub async fn inbox(&self, limit: usize) -> Result<Vec<MessageView>, NodeError> {
        let store = self.shared.store.clone();
        let rows = blocking(move || store.letters(limit)).await?;
        let contacts = self.shared.contacts().await;
        Ok(rows.iter().map(|m| self.shared.view(m, &contacts)).collect())
    }

    /// Posts and letters whose text has every word of `text`, best first.
    pub async fn search(&self, text: &str, limit: usize) -> Result<Vec<MessageView>, NodeError> {
        let (store, text) = (self.shared.store.clone(), text.to_string());
        let rows = blocking(move || store.search_messages(&text, limit)).await?;
        let contacts = self.shared.contacts().await;
        Ok(rows.iter().map(|m| self.shared.view(m, &contacts)).collect())
    }

    /// Names a peer; returns the name as stored (normalised).
    pub async fn add_contact(&self, name: &str, peer: &str) -> Result<String, NodeError> {
        let p: PeerId = peer.trim().parse().map_err(|_| MessagingError::UnknownPeer(peer.to_string()))?;
        ids::author_of(&p).ok_or_else(|| MessagingError::NoKey(p.to_string()))?;
        let (store, name, peer) = (self.shared.store.clone(), name.to_string(), p.to_string());
        blocking(move || store.add_contact(&name, &peer, super::now_ms())).await
    }

    /// Forgets a contact; whether there was one by that name.
    pub async fn remove_contact(&self, name: &str) -> Result<bool, NodeError> {
        let (store, name) = (self.shared.store.clone(), name.to_string());
        blocking(move || store.remove_contact(&name)).await
    }

    /// Every contact, `(name, peer id)`, by name.
    pub async fn contacts(&self) -> Result<Vec<(String, String)>, NodeError> {
        let store = self.shared.store.clone();
        blocking(move || store.contacts()).await
    }

    /// This peer's author key (its Ed25519 public key), for tests that forge posts in its name.
    #[doc(hidden)]
    pub fn my_key_for_tests(&self) -> [u8; 32] {
        self.shared.my_key
    }

    /// Counters since start.
    pub fn counters(&self) -> MessagingCounters {
        let mut c = shoal_store::lock(&self.shared.counters).clone();
        c.letters_held = self.shared.state().holding.len() as u64;
        c
    }

    async fn resolve_peer(&self, to: &str) -> Result<PeerId, NodeError> {
        if let Ok(p) = to.trim().parse::<PeerId>() {
            return Ok(p);
        }
        let contacts = self.contacts().await?;
        let name = shoal_proto::messaging::post::clean_name(to, shoal_store::MAX_PETNAME, "a contact name")
            .map_err(|_| MessagingError::UnknownPeer(to.to_string()))?;
        let peer = contacts.into_iter().find(|(n, _)| *n == name).map(|(_, p)| p);
        peer.and_then(|p| p.parse().ok()).ok_or_else(|| MessagingError::UnknownPeer(to.to_string()).into())
    }

    async fn page(
        &self,
        conversation: [u8; 32],
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<MessageView>, NodeError> {
        let store = self.shared.store.clone();
        let after = match after {
            None => None,
            Some(a) => {
                let id = ids::unhex(a).ok_or_else(|| MessagingError::Compose(format!("{a:?} is not a message id")))?;
                let s = store.clone();
                let m = blocking(move || s.message(&id)).await?;
                Some(m.map(|m| (m.clock, m.id)).ok_or_else(|| MessagingError::Compose(format!("no message {a}")))?)
            }
        };
        let rows = blocking(move || store.conversation(&conversation, after, limit)).await?;
        let contacts = self.shared.contacts().await;
        Ok(rows.iter().map(|m| self.shared.view(m, &contacts)).collect())
    }
}

#[derive(Debug)]
struct MessagingMetrics(Arc<Shared>);

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("messaging::Shared").field("peer_id", &self.peer_id).finish_non_exhaustive()
    }
}

impl Collector for MessagingMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let c = shoal_store::lock(&self.0.counters).clone();
        let held = self.0.state().holding.len() as i64;
        counter(&mut enc, "shoal_posts_sent", "Topic posts written on this peer", c.posts_sent)?;
        counter(&mut enc, "shoal_posts_received", "Topic posts from others placed in a log", c.posts_received)?;
        counter(
            &mut enc,
            "shoal_posts_rejected",
            "Topic messages rejected or over their author's rate",
            c.posts_rejected,
        )?;
        counter(&mut enc, "shoal_letters_sent", "Direct letters written on this peer", c.letters_sent)?;
        counter(&mut enc, "shoal_letters_received", "Direct letters received", c.letters_received)?;
        counter(&mut enc, "shoal_letters_delivered", "Letters written here whose receipt came", c.letters_delivered)?;
        counter(&mut enc, "shoal_letters_placed", "Copies of our letters that holders took", c.letters_placed)?;
        gauge(&mut enc, "shoal_letters_held", "Letters this peer holds for offline recipients", held)
    }
}
