//! Topics: following them, judging what gossipsub brings, keeping posts in order, refilling from peers.
//!
//! A message from gossipsub is forwarded only if [`judge`] accepts it: it decodes as a post within its
//! limits, its author's signature holds, it belongs to the gossipsub topic it came on, its clock follows
//! from its parents, and its author is within its rate ([`Rates`]). A forgery or garbage is rejected (the
//! forwarder loses score, see `shoal_net::gossip`); a duplicate or a post over its author's rate is
//! ignored unless the forwarder is the author itself.
//!
//! A peer catches up on a topic with every peer it meets that follows it (gossipsub says so when it
//! connects, and when we join): a refill session over the window's post ids, then the posts each side
//! lacks. A post whose parents have not come makes the log ask a topic peer for them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use shoal_net::{GossipEvent, Verdict};
use shoal_proto::messaging::exchange::{Frame, MAX_WANT};
use shoal_proto::messaging::group::GroupKey;
use shoal_proto::messaging::log::{Action, Refusal};
use shoal_proto::messaging::post::{MAX_TOPIC_NAME, clean_name, topic_name};
use shoal_proto::messaging::refill::{Initiator, Responder};
use shoal_proto::messaging::{AuthorKey, Insert, LogConfig, MsgId, Post, TopicId, TopicLog};
use shoal_store::{MessageKind, MessageRecord, TopicRecord};
use tokio::sync::mpsc;

use super::service::{Followed, Shared};
use super::streams::{ExchangeFailed, Link};
use super::{MessageView, MessagingError, REFILL_WINDOW, TopicView, ids, now_ms};
use crate::NodeError;
use crate::blocking::blocking;

/// Posts an author may publish per second, sustained, and in a burst.
const RATE_PER_SEC: f64 = 2.0;
const BURST: f64 = 20.0;
/// Authors whose rate is tracked; past it, buckets that are full again are forgotten first.
const MAX_AUTHORS: usize = 10_000;
/// A (peer, topic) pair is refilled at most this often.
const REFILL_EVERY: Duration = Duration::from_secs(30);
/// Posts offered to, or taken from, one peer in one exchange.
const MAX_POSTS_PER_EXCHANGE: usize = 4096;
/// Frames one incoming exchange may take.
const MAX_FRAMES: usize = 2 * MAX_POSTS_PER_EXCHANGE;

/// Token buckets of post rates, per author, bounded.
#[derive(Default)]
pub(crate) struct Rates {
    buckets: HashMap<AuthorKey, (f64, Instant)>,
}

impl Rates {
    /// Takes a token of `author`'s bucket; false when it has none left.
    pub(crate) fn allow(&mut self, author: AuthorKey, now: Instant) -> bool {
        let level =
            |(tokens, at): (f64, Instant)| (tokens + now.duration_since(at).as_secs_f64() * RATE_PER_SEC).min(BURST);
        if !self.buckets.contains_key(&author) && self.buckets.len() >= MAX_AUTHORS {
            self.buckets.retain(|_, b| level(*b) < BURST);
            if self.buckets.len() >= MAX_AUTHORS {
                return false;
            }
        }
        let b = self.buckets.entry(author).or_insert((BURST, now));
        let tokens = level(*b);
        if tokens < 1.0 {
            *b = (tokens, now);
            return false;
        }
        *b = (tokens - 1.0, now);
        true
    }
}

/// A post as the history keeps it, its text opened (a private topic's) with `key`.
fn record(topic: TopicId, id: MsgId, post: &Post, gap: bool, key: Option<&GroupKey>) -> MessageRecord {
    let c = &post.content;
    // Only posts whose text opened are admitted (see `admit`), so this fails only for a post kept from
    // before a format change: it is kept, and shown as unreadable.
    let text = post.text(key).unwrap_or_else(|e| format!("[unreadable: {e}]"));
    MessageRecord {
        id,
        kind: MessageKind::Post,
        conversation: topic.0,
        author: c.author,
        time_ms: c.time_ms,
        clock: c.clock,
        gap,
        text,
        status: None,
        frame: post.encode().unwrap_or_default(),
    }
}

fn placed(t: &Followed, ids: &[MsgId], gap: bool) -> Vec<MessageRecord> {
    let log = &t.log;
    ids.iter().filter_map(|id| log.get(id).map(|p| record(log.topic(), *id, p, gap, t.key.as_ref()))).collect()
}

/// How a post reached us.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// Gossipsub, which forwards it if we accept it.
    Gossip,
    /// Offered by a peer in a refill: counted against its author's rate, and published on if new.
    Offered,
    /// Fetched because we asked: published on if new.
    Asked,
}

/// Checks a post and puts it in its topic's log; saves what got placed. A post that came outside
/// gossipsub and is new here is published on the topic, so it travels on from us: the peers that missed
/// it while it was only at the peer we refilled from get it now, not at their next refill.
pub(crate) async fn ingest(shared: &Shared, post: Post, source: Option<PeerId>, via: Via) -> Verdict {
    let (verdict, records) = admit(shared, post, source, via).await;
    shared.save(records).await;
    verdict
}

/// [`ingest`] but the saving: the verdict and the records to save.
async fn admit(shared: &Shared, post: Post, source: Option<PeerId>, via: Via) -> (Verdict, Vec<MessageRecord>) {
    let rate = via != Via::Asked;
    let Ok(checked) = post.check(now_ms()) else {
        shared.count(|c| c.posts_rejected += 1);
        return (Verdict::Reject, Vec::new());
    };
    let (topic, author) = (checked.post().content.topic, checked.post().content.author);
    let now = Instant::now();
    let (records, verdict) = {
        let mut st = shared.state();
        if !st.topics.contains_key(&topic) {
            return (Verdict::Ignore, Vec::new());
        }
        if rate && !st.rates.allow(author, now) {
            drop(st);
            shared.count(|c| c.posts_rejected += 1);
            let from_author = source.and_then(|s| ids::author_of(&s)) == Some(author);
            return (if from_author { Verdict::Reject } else { Verdict::Ignore }, Vec::new());
        }
        let Some(t) = st.topics.get_mut(&topic) else { return (Verdict::Ignore, Vec::new()) };
        // A private topic's post that does not open (a non-member's, or sealed wrong) goes no further,
        // nor does one in the clear there, or a sealed one in a public topic.
        if checked.post().text(t.key.as_ref()).is_err() {
            drop(st);
            shared.count(|c| c.posts_rejected += 1);
            return (Verdict::Reject, Vec::new());
        }
        match t.log.insert(checked, now) {
            Insert::Placed(new) => (placed(t, &new, false), Verdict::Accept),
            Insert::Waiting { .. } => (Vec::new(), Verdict::Accept),
            Insert::Duplicate | Insert::Refused(Refusal::TooManyWaiting { .. }) => (Vec::new(), Verdict::Ignore),
            Insert::Refused(_) => (Vec::new(), Verdict::Reject),
        }
    };
    let theirs = records.iter().filter(|r| r.author != shared.my_key).count() as u64;
    shared.count(|c| {
        c.posts_received += theirs;
        if verdict == Verdict::Reject {
            c.posts_rejected += 1;
        }
    });
    if via != Via::Gossip {
        for r in &records {
            let _ = shared.net.publish(ids::gossip_topic(&topic), r.frame.clone()).await;
        }
    }
    (verdict, records)
}

/// Judges every message gossipsub brings, and refills from peers that turn out to follow our topics.
pub(crate) async fn judge(shared: Arc<Shared>, mut events: mpsc::Receiver<GossipEvent>) {
    while let Some(ev) = events.recv().await {
        match ev {
            GossipEvent::Message(m) => {
                let (verdict, records) = match Post::decode(&m.data) {
                    Ok(post) if ids::gossip_topic(&post.content.topic) == m.topic => {
                        admit(&shared, post, Some(m.source), Via::Gossip).await
                    }
                    _ => {
                        shared.count(|c| c.posts_rejected += 1);
                        (Verdict::Reject, Vec::new())
                    }
                };
                if verdict == Verdict::Reject {
                    tracing::debug!(peer = %m.source, "rejected a topic message");
                }
                // The verdict first: gossipsub forwards on it, and the next hop need not wait for our disk.
                // A crash before the save loses only our copy, which the next refill brings back.
                let _ = shared.net.report(m.id, m.source, verdict).await;
                shared.save(records).await;
            }
            GossipEvent::Subscribed { peer, topic } => {
                let id = shared.state().by_gossip.get(&topic).copied();
                if let Some(id) = id {
                    maybe_refill(&shared, peer, id);
                }
            }
        }
    }
}

/// Starts a refill of `topic` from `peer` unless one ran lately.
fn maybe_refill(shared: &Arc<Shared>, peer: PeerId, topic: TopicId) {
    let now = Instant::now();
    {
        let mut st = shared.state();
        if st.refilled.get(&(peer, topic)).is_some_and(|at| now.duration_since(*at) < REFILL_EVERY) {
            return;
        }
        if st.refilled.len() >= MAX_AUTHORS {
            st.refilled.retain(|_, at| now.duration_since(*at) < REFILL_EVERY);
        }
        st.refilled.insert((peer, topic), now);
    }
    let s = shared.clone();
    shared.tasks.spawn(async move {
        match refill(&s, peer, topic).await {
            Ok(n) => tracing::debug!(%peer, topic = %topic.to_hex(), got = n, "refilled"),
            Err(e) => tracing::debug!(%peer, error = %e, "refill failed"),
        }
    });
}

/// One refill session with `peer`: learn the difference, offer what it lacks, fetch what we lack.
async fn refill(shared: &Shared, peer: PeerId, topic: TopicId) -> Result<usize, ExchangeFailed> {
    let since = now_ms().saturating_sub(REFILL_WINDOW.as_millis() as u64);
    let items = {
        let st = shared.state();
        let Some(t) = st.topics.get(&topic) else { return Ok(0) };
        t.log.items_since(since)
    };
    let (mut init, first) = Initiator::start(topic, items).map_err(|_| ExchangeFailed::Unexpected("refill start"))?;
    let mut link = Link::open(shared, peer).await?;
    link.send(&Frame::Refill(first)).await?;
    let (mut have, mut need) = (Vec::new(), Vec::new());
    loop {
        let Frame::Refill(m) = link.expect().await? else {
            return Err(ExchangeFailed::Unexpected("answered a refill round with something else"));
        };
        let learned = init.step(&m).map_err(|_| ExchangeFailed::Unexpected("a malformed refill round"))?;
        have.extend(learned.have);
        need.extend(learned.need);
        match learned.next {
            Some(next) => link.send(&Frame::Refill(next)).await?,
            None => break,
        }
    }
    let offer: Vec<Post> = {
        let st = shared.state();
        let Some(t) = st.topics.get(&topic) else { return Ok(0) };
        have.iter().filter_map(|id| t.log.get(id).cloned()).take(MAX_POSTS_PER_EXCHANGE).collect()
    };
    for p in offer {
        link.send(&Frame::Post(p)).await?;
    }
    fetch(shared, link, topic, need).await
}

/// Asks for `need` on `link` and takes the posts that come, until the peer's `Done`.
async fn fetch(shared: &Shared, mut link: Link, topic: TopicId, need: Vec<MsgId>) -> Result<usize, ExchangeFailed> {
    for chunk in need.chunks(MAX_WANT).take(MAX_POSTS_PER_EXCHANGE / MAX_WANT) {
        link.send(&Frame::Want { topic, ids: chunk.to_vec() }).await?;
    }
    link.send(&Frame::Done).await?;
    let mut got = 0;
    loop {
        match link.expect().await? {
            Frame::Post(p) if p.content.topic == topic && got < MAX_POSTS_PER_EXCHANGE => {
                ingest(shared, p, Some(link.peer), Via::Asked).await;
                got += 1;
            }
            Frame::Done => break,
            _ => return Err(ExchangeFailed::Unexpected("sent something other than the posts asked for")),
        }
    }
    link.close().await;
    shared.count(|c| c.posts_refilled += got as u64);
    Ok(got)
}

/// The answering side of a refill or a `Want`.
pub(crate) async fn answer(shared: &Shared, mut link: Link, first: Frame) -> Result<(), ExchangeFailed> {
    let mut responder: Option<Responder> = None;
    let mut frame = first;
    for _ in 0..MAX_FRAMES {
        match frame {
            Frame::Refill(m) => {
                if responder.is_none() {
                    let since = now_ms().saturating_sub(REFILL_WINDOW.as_millis() as u64);
                    // A topic we do not follow reconciles as an empty set: the peer learns we have nothing.
                    let items =
                        shared.state().topics.get(&m.topic).map(|t| t.log.items_since(since)).unwrap_or_default();
                    responder =
                        Some(Responder::new(m.topic, items).map_err(|_| ExchangeFailed::Unexpected("refill start"))?);
                }
                let Some(r) = responder.as_mut() else { return Ok(()) };
                let a = r.answer(&m).map_err(|_| ExchangeFailed::Unexpected("a malformed refill round"))?;
                link.send(&Frame::Refill(a)).await?;
            }
            Frame::Want { topic, ids } => {
                let posts: Vec<Post> = {
                    let st = shared.state();
                    st.topics.get(&topic).map(|t| ids.iter().filter_map(|id| t.log.get(id).cloned()).collect())
                }
                .unwrap_or_default();
                for p in posts {
                    link.send(&Frame::Post(p)).await?;
                }
            }
            Frame::Post(p) => {
                ingest(shared, p, Some(link.peer), Via::Offered).await;
                shared.count(|c| c.posts_refilled += 1);
            }
            Frame::Done => {
                link.send(&Frame::Done).await?;
                link.close().await;
                return Ok(());
            }
            _ => return Err(ExchangeFailed::Unexpected("a letter frame in a topic exchange")),
        }
        frame = match link.recv().await? {
            Some(f) => f,
            None => return Ok(()),
        };
    }
    Err(ExchangeFailed::Unexpected("too many frames in one exchange"))
}

/// Every second or so: logs ask for missing parents, and place what waited too long.
pub(crate) async fn tick(shared: &Arc<Shared>) {
    let now = Instant::now();
    let mut asks = Vec::new();
    let mut records = Vec::new();
    {
        let mut st = shared.state();
        for (id, t) in st.topics.iter_mut() {
            if t.log.next_deadline().is_none_or(|d| d > now) {
                continue;
            }
            for a in t.log.poll(now) {
                match a {
                    Action::Ask(want) => asks.push((*id, want)),
                    Action::Placed(ids) => records.extend(placed(t, &ids, true)),
                }
            }
        }
    }
    shared.save(records).await;
    for (topic, want) in asks {
        let Ok(peers) = shared.net.topic_peers(ids::gossip_topic(&topic)).await else { continue };
        // One peer per ask, a different one each time the log asks again.
        let Some(peer) = peers.get(rand::random_range(0..peers.len().max(1))).copied() else { continue };
        let s = shared.clone();
        shared.tasks.spawn(async move {
            let r = async { fetch(&s, Link::open(&s, peer).await?, topic, want).await }.await;
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "asking for missing posts failed");
            }
        });
    }
}

fn view(topic: &TopicId, t: &Followed, peers: usize) -> TopicView {
    TopicView {
        name: t.name.clone(),
        id: topic.to_hex(),
        private: t.key.is_some(),
        key: t.key.as_ref().map(|k| ids::hex(&k.to_bytes())),
        posts: t.log.len(),
        waiting: t.log.waiting(),
        gaps: t.log.gaps(),
        peers,
    }
}

/// Starts following `id`: its log from the history kept, then gossipsub, then a refill from every peer
/// that follows it already.
async fn follow(shared: &Arc<Shared>, id: TopicId, name: String, key: Option<GroupKey>) -> Result<(), NodeError> {
    let store = shared.store.clone();
    let rows = blocking(move || store.conversation(&id.0, None, LogConfig::default().max_posts)).await?;
    let mut log = TopicLog::new(id, LogConfig::default());
    let (now, now_ms) = (Instant::now(), now_ms());
    for r in rows {
        if let Ok(c) = Post::decode(&r.frame).and_then(|p| p.check(now_ms)) {
            log.insert(c, now);
        }
    }
    let gossip = ids::gossip_topic(&id);
    {
        let mut st = shared.state();
        st.by_gossip.insert(gossip.clone(), id);
        st.topics.insert(id, Followed { name, key, log });
    }
    shared.net.join_topic(gossip.clone()).await?;
    for peer in shared.net.topic_peers(gossip).await.unwrap_or_default() {
        maybe_refill(shared, peer, id);
    }
    Ok(())
}

/// Follows the topics a previous run followed.
pub(crate) async fn resume(shared: &Arc<Shared>) -> Result<(), NodeError> {
    let store = shared.store.clone();
    for t in blocking(move || store.topics()).await? {
        follow(shared, TopicId(t.id), t.name, t.key.map(GroupKey::from_bytes)).await?;
    }
    Ok(())
}

pub(crate) async fn join(shared: &Arc<Shared>, name: &str, key: Option<&str>) -> Result<TopicView, NodeError> {
    let (id, name, secret) = match key {
        None => {
            let id = TopicId::public(name).map_err(|e| MessagingError::Topic(e.to_string()))?;
            (id, topic_name(name).map_err(|e| MessagingError::Topic(e.to_string()))?, None)
        }
        Some(k) => {
            let key = ids::unhex(k).ok_or_else(|| {
                MessagingError::Topic("a private topic's key is 64 hex digits (from its invite)".into())
            })?;
            let name = clean_name(name, MAX_TOPIC_NAME, "a topic name").map_err(MessagingError::Topic)?;
            (TopicId::private(&key), name, Some(key))
        }
    };
    if !shared.state().topics.contains_key(&id) {
        let rec = TopicRecord { id: id.0, name: name.clone(), key: secret, joined_ms: now_ms() };
        let store = shared.store.clone();
        blocking(move || store.join_topic(&rec)).await?;
        follow(shared, id, name, secret.map(GroupKey::from_bytes)).await?;
    }
    let peers = shared.net.topic_peers(ids::gossip_topic(&id)).await.map_or(0, |p| p.len());
    let st = shared.state();
    let t = st.topics.get(&id).ok_or_else(|| MessagingError::NotFollowing(id.to_hex()))?;
    Ok(view(&id, t, peers))
}

/// Starts a new private topic: a fresh key, followed here; members join with the key.
pub(crate) async fn create_private(shared: &Arc<Shared>, name: &str) -> Result<TopicView, NodeError> {
    let key: [u8; 32] = rand::random();
    join(shared, name, Some(&ids::hex(&key))).await
}

/// A followed topic by its name or id.
pub(crate) fn resolve(shared: &Shared, topic: &str) -> Result<TopicId, MessagingError> {
    let st = shared.state();
    let by_name = topic_name(topic).ok().and_then(|n| st.topics.iter().find(|(_, t)| t.name == n).map(|(id, _)| *id));
    let by_id = ids::unhex(topic).map(TopicId).filter(|id| st.topics.contains_key(id));
    by_name.or(by_id).ok_or_else(|| MessagingError::NotFollowing(topic.to_string()))
}

pub(crate) async fn leave(shared: &Arc<Shared>, topic: &str) -> Result<bool, NodeError> {
    let Ok(id) = resolve(shared, topic) else { return Ok(false) };
    let gossip = ids::gossip_topic(&id);
    {
        let mut st = shared.state();
        st.topics.remove(&id);
        st.by_gossip.remove(&gossip);
    }
    shared.net.leave_topic(gossip).await?;
    let store = shared.store.clone();
    blocking(move || store.leave_topic(&id.0)).await
}

pub(crate) async fn list(shared: &Arc<Shared>) -> Vec<TopicView> {
    let ids: Vec<TopicId> = shared.state().topics.keys().copied().collect();
    let mut out = Vec::new();
    for id in ids {
        let peers = shared.net.topic_peers(ids::gossip_topic(&id)).await.map_or(0, |p| p.len());
        let st = shared.state();
        if let Some(t) = st.topics.get(&id) {
            out.push(view(&id, t, peers));
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

pub(crate) async fn post(shared: &Arc<Shared>, topic: &str, text: &str) -> Result<MessageView, NodeError> {
    if text.trim().is_empty() {
        return Err(MessagingError::Compose("nothing to post: the text is empty".into()).into());
    }
    let id = resolve(shared, topic)?;
    let (rec, frame) = {
        let mut st = shared.state();
        let t = st.topics.get_mut(&id).ok_or_else(|| MessagingError::NotFollowing(topic.to_string()))?;
        let draft = t.log.draft(&shared.my_key, now_ms(), text.to_string());
        let checked = match &t.key {
            None => Post::sign(&shared.me, draft),
            Some(k) => Post::sign_sealed(&shared.me, draft, k, rand::random()),
        }
        .map_err(|e| MessagingError::Compose(format!("cannot post: {e}")))?;
        let frame = checked.post().encode().map_err(|e| MessagingError::Compose(e.to_string()))?;
        let post_id = checked.id();
        let rec = record(id, post_id, checked.post(), false, t.key.as_ref());
        t.log.insert(checked, Instant::now());
        (rec, frame)
    };
    shared.count(|c| c.posts_sent += 1);
    let contacts = shared.contacts().await;
    let view = shared.view(&rec, &contacts);
    shared.save(vec![rec]).await;
    shared.net.publish(ids::gossip_topic(&id), frame).await?;
    Ok(view)
}
