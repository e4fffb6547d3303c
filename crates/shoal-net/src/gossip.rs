//! Topics over libp2p gossipsub: the behaviour's configuration and the types the messaging service sees.
//!
//! Gossipsub carries what a service publishes; it does not judge it. Every message received is held by
//! gossipsub until the service says what it is ([`Verdict`]): only accepted messages are forwarded, and a
//! rejected one costs its sender score (v1.1 peer scoring, P4), so a peer that sends garbage or forgeries
//! is soon pruned from the mesh and then ignored. Messages are anonymous at this layer (no gossipsub
//! signature, source or sequence number): the service's own messages are signed by their authors, and
//! the id is BLAKE3 of the bytes, so the same message forwarded by many peers is one message.
//!
//! Topics are named by the service (`shoal/m/1/<hex>` for messaging); gossipsub v1.2's IDONTWANT is on for
//! messages above 1 KB (the crate's default), which saves the duplicate copies of large messages.

use std::time::Duration;

use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot};

use crate::NetError;
use libp2p::gossipsub::{
    self, MessageAuthenticity, MessageId, PeerScoreParams, PeerScoreThresholds, TopicScoreParams, ValidationMode,
};

/// Largest gossipsub message: a topic post's largest frame (64 KiB of text and its fields) and the
/// envelope.
pub const MAX_GOSSIP_MESSAGE: usize = 80 * 1024;

/// Messages waiting for the service's verdict; beyond, new ones are ignored (neither forwarded nor held).
pub(crate) const PENDING_MESSAGES: usize = 1024;

/// A message received on a topic, waiting for [`Network::report`](crate::Network::report).
#[derive(Clone, Debug)]
pub struct GossipMessage {
    /// The peer that forwarded it to us (not necessarily its author).
    pub source: PeerId,
    /// Gossipsub's id for it (BLAKE3 of the bytes): give it back with the verdict.
    pub id: Vec<u8>,
    /// The topic's name.
    pub topic: String,
    /// The bytes.
    pub data: Vec<u8>,
}

/// What happened on the topics we follow.
#[derive(Clone, Debug)]
pub enum GossipEvent {
    /// A message to judge.
    Message(GossipMessage),
    /// A connected peer follows `topic` (it just joined it, or we just met it).
    Subscribed {
        /// The peer.
        peer: PeerId,
        /// The topic's name.
        topic: String,
    },
}

/// The service's word on a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: deliver and forward it.
    Accept,
    /// Not wrong but not wanted (a duplicate, over a rate): drop it without blaming the sender.
    Ignore,
    /// Invalid (malformed, forged): drop it and lower the sender's score.
    Reject,
}

impl From<Verdict> for gossipsub::MessageAcceptance {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Accept => Self::Accept,
            Verdict::Ignore => Self::Ignore,
            Verdict::Reject => Self::Reject,
        }
    }
}

/// What the network handle asks of gossipsub (through the event loop).
pub(crate) enum GossipCommand {
    Join { topic: String, reply: oneshot::Sender<Result<(), NetError>> },
    Leave { topic: String },
    Publish { topic: String, data: Vec<u8>, reply: oneshot::Sender<Result<usize, NetError>> },
    Report { id: Vec<u8>, source: PeerId, verdict: Verdict },
    Peers { topic: String, reply: oneshot::Sender<Vec<PeerId>> },
}

/// Carries out `cmd` on the behaviour.
pub(crate) fn command(b: &mut gossipsub::Behaviour, cmd: GossipCommand) {
    match cmd {
        GossipCommand::Join { topic, reply } => {
            let t = gossipsub::IdentTopic::new(topic);
            let r = b
                .subscribe(&t)
                .map(|_| ())
                .map_err(|e| NetError::Gossip(format!("cannot join topic {t}: {e}")))
                .and_then(|()| {
                    b.set_topic_params(t.clone(), topic_params())
                        .map_err(|e| NetError::Gossip(format!("topic scoring for {t}: {e}")))
                });
            let _ = reply.send(r);
        }
        GossipCommand::Leave { topic } => {
            b.unsubscribe(&gossipsub::IdentTopic::new(topic));
        }
        GossipCommand::Publish { topic, data, reply } => {
            let t = gossipsub::IdentTopic::new(topic);
            let peers = b.all_peers().filter(|(_, topics)| topics.contains(&&t.hash())).count();
            let r = match b.publish(t, data) {
                Ok(_) => Ok(peers),
                // Nobody to send to now: the message is ours alone until peers come and refill it.
                Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => Ok(0),
                Err(gossipsub::PublishError::Duplicate) => Ok(peers),
                Err(e) => Err(NetError::Gossip(format!("cannot publish: {e}"))),
            };
            let _ = reply.send(r);
        }
        GossipCommand::Report { id, source, verdict } => {
            b.report_message_validation_result(&MessageId::new(&id), &source, verdict.into());
        }
        GossipCommand::Peers { topic, reply } => {
            let hash = gossipsub::IdentTopic::new(topic).hash();
            let peers = b.all_peers().filter(|(_, topics)| topics.contains(&&hash)).map(|(p, _)| *p).collect();
            let _ = reply.send(peers);
        }
    }
}

/// Hands what gossipsub reports to the service; a message the service cannot take now (nobody listens,
/// or [`PENDING_MESSAGES`] wait already) is ignored at once rather than held.
pub(crate) fn on_event(b: &mut gossipsub::Behaviour, to: &mpsc::Sender<GossipEvent>, ev: gossipsub::Event) {
    match ev {
        gossipsub::Event::Message { propagation_source, message_id, message } => {
            let m = GossipMessage {
                source: propagation_source,
                id: message_id.0.clone(),
                topic: message.topic.into_string(),
                data: message.data,
            };
            if to.try_send(GossipEvent::Message(m)).is_err() {
                b.report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    gossipsub::MessageAcceptance::Ignore,
                );
            }
        }
        gossipsub::Event::Subscribed { peer_id, topic } => {
            let _ = to.try_send(GossipEvent::Subscribed { peer: peer_id, topic: topic.into_string() });
        }
        gossipsub::Event::SlowPeer { peer_id, failed_messages } => {
            tracing::debug!(peer = %peer_id, ?failed_messages, "gossipsub: peer too slow to take our messages");
        }
        _ => {}
    }
}

fn content_id(m: &gossipsub::Message) -> MessageId {
    MessageId::new(blake3::hash(&m.data).as_bytes())
}

/// How wide each topic's mesh is: every peer sends a whole message to about `n` mesh peers and only its id
/// to a few others (IHAVE), so `n` trades bytes for hops. Each peer receives up to `n` copies of a message
/// (IDONTWANT spares the ones still queued when the first arrives), and a message crosses about
/// log(peers)/log(n - 1) hops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GossipMesh {
    /// Mesh peers wanted per topic (gossipsub's D).
    pub n: usize,
    /// Below this, the heartbeat grafts more (D_low).
    pub low: usize,
    /// Above this, the heartbeat prunes (D_high).
    pub high: usize,
    /// Our own messages go to every subscribed peer we know rather than to the mesh only: a hop less for
    /// the first ring, more bytes at the publisher (one copy per peer it knows, spread over all peers).
    pub flood_publish: bool,
    /// Peers outside the mesh told each heartbeat which messages we have (IHAVE; gossipsub's D_lazy). A
    /// peer that lacks one asks for it (IWANT) and gets a whole copy, so each of these costs bytes even
    /// when the mesh would have delivered.
    pub lazy: usize,
}

impl GossipMesh {
    /// A mesh of degree `n` (at least 2): D_low `n` - `n`/4, D_high `n` + `n`/4 (at least `n` + 1),
    /// publishing to the mesh only, IHAVE to 6 peers (gossipsub's D_lazy). D_high is far tighter than
    /// gossipsub's 2D because every mesh peer above D is one more copy of every message: at 1,000 peers
    /// D_high 6 cost 3.05 copies per delivery and 5 cost 2.69, for 50 ms more at the median
    /// (`docs/ARCHITECTURE.md`, Messaging).
    pub fn with_degree(n: usize) -> Self {
        let n = n.max(2);
        Self { n, low: n - n / 4, high: n + (n / 4).max(1), flood_publish: false, lazy: 6 }
    }

    /// Publishes to every subscribed peer we know (see [`GossipMesh::flood_publish`]).
    pub fn with_flood_publish(mut self, on: bool) -> Self {
        self.flood_publish = on;
        self
    }

    /// Tells `lazy` peers outside the mesh per heartbeat what we have (see [`GossipMesh::lazy`]).
    pub fn with_lazy(mut self, lazy: usize) -> Self {
        self.lazy = lazy;
        self
    }
}

impl Default for GossipMesh {
    /// Degree 3 (D_low 3, D_high 4) with flood publishing: the mesh's size sets the copies each peer
    /// receives and flood publishing wins back the hops a narrower mesh costs. At 1,000 peers over 50 ms
    /// links it delivered with a p50 of 250 ms and 2.28x the payload on gossipsub's streams, where degree 4
    /// publishing to the mesh took 300 ms and 3.46x (`docs/ARCHITECTURE.md`, Messaging).
    fn default() -> Self {
        Self::with_degree(3).with_flood_publish(true)
    }
}

/// The behaviour: anonymous messages, ids by content, validation by the service, peer scoring on.
pub(crate) fn behaviour(
    mesh: GossipMesh,
    registry: Option<&mut prometheus_client::registry::Registry>,
) -> Result<gossipsub::Behaviour, String> {
    let config = gossipsub::ConfigBuilder::default()
        .mesh_n(mesh.n)
        .mesh_n_low(mesh.low)
        .mesh_n_high(mesh.high)
        // Half of D at most (gossipsub's rule), and never more than D_low.
        .mesh_outbound_min((mesh.n / 2).min(mesh.low).min(2))
        .flood_publish(mesh.flood_publish)
        .gossip_lazy(mesh.lazy)
        // Exactly `lazy` peers: gossipsub's default also tells a quarter of all other subscribed peers, which
        // at 1,000 peers is most of the IHAVE bytes and, through the IWANTs they answer, whole copies.
        .gossip_factor(0.0)
        // Our own message need not come back to us from the mesh peers we just sent it to.
        .idontwant_on_publish(true)
        .validation_mode(ValidationMode::Anonymous)
        .message_id_fn(content_id)
        .validate_messages()
        .max_transmit_size(MAX_GOSSIP_MESSAGE)
        .heartbeat_interval(Duration::from_secs(1))
        .build()
        .map_err(|e| format!("gossipsub configuration: {e}"))?;
    let mut b = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config)?;
    b.with_peer_score(score_params(), PeerScoreThresholds::default())?;
    if let Some(r) = registry {
        b = b.with_metrics(r.sub_registry_with_prefix("gossipsub"), gossipsub::MetricsConfig::default());
    }
    Ok(b)
}

fn score_params() -> PeerScoreParams {
    PeerScoreParams {
        // Tests and LANs put many peers behind one address; the penalty for sharing one starts past this.
        ip_colocation_factor_threshold: 64.0,
        ..PeerScoreParams::default()
    }
}

/// Scoring of one topic. Chat topics are quiet, so a mesh peer that delivered little is not at fault
/// (P3 and P3b off); invalid messages weigh eight times the default, so a peer that sends four forgeries
/// in a row goes below the graylist threshold (-80: P4 is the square of the count, times the weights) and
/// what it sends is dropped unread, while one mistake costs less than the gossip threshold.
pub(crate) fn topic_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -8.0,
        invalid_message_deliveries_decay: 0.5,
        ..TopicScoreParams::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_is_accepted_by_gossipsub() {
        for n in [2, 3, 4, 6, 8, 12] {
            drop(behaviour(GossipMesh::with_degree(n), None).unwrap());
        }
        for lazy in [0, 3, 6] {
            drop(behaviour(GossipMesh::default().with_lazy(lazy), None).unwrap());
        }
        // With a registry too: the metrics layer must accept the same configuration.
        let mut registry = prometheus_client::registry::Registry::default();
        drop(behaviour(GossipMesh::with_degree(8), Some(&mut registry)).unwrap());
        topic_params().validate().unwrap();
        score_params().validate().unwrap();
    }

    async fn judge_all(net: crate::Network, verdict: Verdict, got: mpsc::Sender<Vec<u8>>) {
        let mut events = net.gossip_events().unwrap();
        while let Some(ev) = events.recv().await {
            if let GossipEvent::Message(m) = ev {
                net.report(m.id, m.source, verdict).await.unwrap();
                let _ = got.send(m.data).await;
            }
        }
    }

    /// a - b - c in a line: what a publishes reaches c only through b, and only when b accepts it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_crosses_a_peer_that_accepts_it_and_stops_at_one_that_rejects_it() {
        for (verdict, reaches_c) in [(Verdict::Accept, true), (Verdict::Reject, false)] {
            let mut nets = Vec::new();
            for _ in 0..3 {
                let key = libp2p::identity::Keypair::generate_ed25519();
                nets.push(crate::Network::start(key, crate::NetConfig::loopback()).await.unwrap());
            }
            let (a, b, c) = (nets[0].clone(), nets[1].clone(), nets[2].clone());
            let (tx_b, mut at_b) = mpsc::channel(8);
            let (tx_c, mut at_c) = mpsc::channel(8);
            tokio::spawn(judge_all(b.clone(), verdict, tx_b));
            tokio::spawn(judge_all(c.clone(), Verdict::Accept, tx_c));
            for n in &nets {
                n.join_topic("t".into()).await.unwrap();
            }
            let b_addr = b.listen_addrs().await.unwrap().remove(0);
            a.dial(b_addr.clone()).await.unwrap();
            c.dial(b_addr).await.unwrap();
            // Subscriptions are exchanged once connected: wait (bounded) until b is a's topic peer.
            let mut known = false;
            for _ in 0..100 {
                if a.topic_peers("t".into()).await.unwrap() == vec![b.peer_id()]
                    && c.topic_peers("t".into()).await.unwrap() == vec![b.peer_id()]
                {
                    known = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(known, "subscriptions were not exchanged within 5 s");
            assert_eq!(a.publish("t".into(), b"hello".to_vec()).await.unwrap(), 1);
            let wait = Duration::from_secs(5);
            assert_eq!(tokio::time::timeout(wait, at_b.recv()).await.unwrap().unwrap(), b"hello");
            let at_c = tokio::time::timeout(wait, at_c.recv()).await;
            match reaches_c {
                true => assert_eq!(at_c.unwrap().unwrap(), b"hello"),
                false => assert!(at_c.is_err(), "a rejected message was forwarded"),
            }
            for n in &nets {
                n.shutdown().await;
            }
        }
    }

    #[test]
    fn four_rejected_messages_graylist_their_sender() {
        let p = topic_params();
        let count: f64 = 4.0;
        let score = p.topic_weight * p.invalid_message_deliveries_weight * count * count;
        assert!(score < PeerScoreThresholds::default().graylist_threshold, "{score}");
        let one = p.topic_weight * p.invalid_message_deliveries_weight;
        assert!(one > PeerScoreThresholds::default().gossip_threshold, "one mistake is not banishment: {one}");
    }
}
