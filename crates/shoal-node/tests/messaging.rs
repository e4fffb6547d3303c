//! Messaging between real peers on 127.0.0.1: a topic over a line of 12 peers (one order everywhere, a
//! peer that was away catches up), letters to a peer that is offline in each topology (holders keep only
//! ciphertext and forget it on the receipt), and forged, garbage and spamming senders.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on what they do not expect

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use shoal_node::config::{SearchConfig, Topology};
use shoal_node::messaging::Messaging;
use shoal_node::{Node, NodeConfig};
use shoal_proto::messaging::group::GroupKey;
use shoal_proto::messaging::post::{Body, Draft};
use shoal_proto::messaging::{Post, TopicId};

fn msg(node: &Node) -> std::sync::Arc<Messaging> {
    node.service::<Messaging>().unwrap()
}

fn config(home: &Path, topology: Topology, boot: Vec<shoal_net::Multiaddr>, search: SearchConfig) -> NodeConfig {
    let c = NodeConfig::loopback(home.to_path_buf()).with_download(tuning());
    let net = c.net.clone().with_bootstrap(boot);
    c.with_topology(topology).with_net(net).with_search(search)
}

async fn texts(node: &Node, topic: &str) -> Vec<String> {
    msg(node).history(topic, None, 1000).await.unwrap().into_iter().map(|m| m.text).collect()
}

/// Peer i dials peer i-1 only: a line, where peer 11 is eleven hops from peer 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_crosses_a_line_of_twelve_in_one_order_and_a_returning_peer_catches_up() {
    init_tracing();
    let root = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..12 {
        let boot = match nodes.last() {
            Some(prev) => vec![prev.addrs().await.unwrap()[0].clone()],
            None => Vec::new(),
        };
        let home = root.path().join(i.to_string());
        nodes.push(Node::start(config(&home, Topology::Pure, boot, SearchConfig::default())).await.unwrap());
    }
    for n in &nodes {
        msg(n).join("rust", None).await.unwrap();
    }
    let sent = msg(&nodes[0]).post("rust", "hello, line").await.unwrap();
    assert!(sent.mine && sent.kind == "post");
    for (i, n) in nodes.iter().enumerate() {
        wait_until(&format!("peer {i} to get the first post"), 20, async || texts(n, "rust").await.len() == 1).await;
    }
    // Gossipsub's own counters are in /metrics: the last peer of the line received the post over gossip.
    let metrics = nodes[11].metrics().encode();
    let received = metrics
        .lines()
        .find(|l| l.starts_with("gossipsub_topic_msg_recv_counts_unfiltered_total{"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
    assert!(received.is_some_and(|n| n >= 1), "gossipsub's received count in the metrics: {metrics}");

    // Concurrent posts from both ends and the middle: one order on every peer.
    let (a, b, c) = (msg(&nodes[0]), msg(&nodes[6]), msg(&nodes[11]));
    let (ra, rb, rc) = tokio::join!(a.post("rust", "from 0"), b.post("rust", "from 6"), c.post("rust", "from 11"));
    ra.unwrap();
    rb.unwrap();
    rc.unwrap();
    for (i, n) in nodes.iter().enumerate() {
        wait_until(&format!("peer {i} to get the concurrent posts"), 30, async || texts(n, "rust").await.len() == 4)
            .await;
    }
    let order: Vec<Vec<String>> = {
        let mut v = Vec::new();
        for n in &nodes {
            v.push(msg(n).history("rust", None, 100).await.unwrap().into_iter().map(|m| m.id).collect());
        }
        v
    };
    assert!(order.iter().all(|o| *o == order[0]), "peers show different orders: {order:?}");

    // Peer 11 leaves; 20 posts are written; it comes back (same home, a new port) and gets all 20, in order.
    let last = nodes.pop().unwrap();
    last.shutdown().await;
    drop(last);
    for k in 0..20 {
        msg(&nodes[k % 3]).post("rust", &format!("while away {k}")).await.unwrap();
    }
    // Gossipsub offers its last 5 s of messages to a peer that connects (IHAVE): past that, only a refill
    // can bring them, and that is what this part checks.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let boot = vec![nodes[10].addrs().await.unwrap()[0].clone()];
    let back =
        Node::start(config(&root.path().join("11"), Topology::Pure, boot, SearchConfig::default())).await.unwrap();
    assert_eq!(msg(&back).topics().await.len(), 1, "the followed topic survives the restart");
    wait_until("the returning peer to catch up", 30, async || texts(&back, "rust").await.len() == 24).await;
    let ours: Vec<String> = msg(&back).history("rust", None, 100).await.unwrap().into_iter().map(|m| m.id).collect();
    let theirs: Vec<String> =
        msg(&nodes[10]).history("rust", None, 100).await.unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(ours, theirs, "the returning peer shows the same order");
    let c = msg(&back).counters();
    assert!(c.posts_refilled >= 20 && c.posts_received >= 20, "the 20 came by refill: {c:?}");
    back.shutdown().await;
    for n in nodes {
        n.shutdown().await;
    }
}

/// A raw libp2p peer outside Shoal's rules, on `topic`'s gossip with `a`: its network, its signing key and
/// the gossip topic.
async fn hostile_on(
    a: &Node,
    a_addr: shoal_net::Multiaddr,
    topic: TopicId,
) -> (shoal_net::Network, ed25519_dalek::SigningKey, String) {
    let key = libp2p::identity::Keypair::generate_ed25519();
    let secret: [u8; 32] = key.clone().try_into_ed25519().unwrap().secret().as_ref().try_into().unwrap();
    let sk = ed25519_dalek::SigningKey::from_bytes(&secret);
    let hostile = shoal_net::Network::start(key, shoal_net::NetConfig::loopback()).await.unwrap();
    let gossip = format!("shoal/m/1/{}", topic.to_hex());
    hostile.join_topic(gossip.clone()).await.unwrap();
    hostile.dial(a_addr).await.unwrap();
    wait_until("the hostile peer to see a on the topic", 20, async || {
        hostile.topic_peers(gossip.clone()).await.unwrap().contains(&a.peer_id())
    })
    .await;
    (hostile, sk, gossip)
}

/// Two `pure` peers, b bootstrapped from a: a, its address, b.
async fn two_pure(root: &Path) -> (Node, shoal_net::Multiaddr, Node) {
    let a = Node::start(config(&root.join("a"), Topology::Pure, Vec::new(), SearchConfig::default())).await.unwrap();
    let a_addr = a.addrs().await.unwrap()[0].clone();
    let b = Node::start(config(&root.join("b"), Topology::Pure, vec![a_addr.clone()], SearchConfig::default()))
        .await
        .unwrap();
    (a, a_addr, b)
}

/// A starts a private topic, B joins with its key: they read each other; what travels and what is stored
/// is sealed; an outsider that learnt the topic's id (gossip subscriptions show it) can neither post in
/// the clear nor with another key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_topic_is_read_by_members_only() {
    init_tracing();
    let root = tempfile::tempdir().unwrap();
    let (a, a_addr, b) = two_pure(root.path()).await;
    let made = msg(&a).create_private("crew").await.unwrap();
    let key = made.key.clone().expect("a private topic's view carries its key");
    assert!(made.private && key.len() == 64, "{made:?}");
    let joined = msg(&b).join("our crew", Some(&key)).await.unwrap();
    assert_eq!(joined.id, made.id, "the key names the topic, whatever each member calls it");
    assert!(msg(&b).join("x", Some("not hex")).await.is_err());

    let id: [u8; 32] = (0..32)
        .map(|i| u8::from_str_radix(&made.id[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let (hostile, sk, gossip) = hostile_on(&a, a_addr, TopicId(id)).await;
    let secret = "the door code is 4711";
    msg(&b).post("our crew", secret).await.unwrap();
    msg(&a).post("crew", "noted").await.unwrap();
    wait_until("a to read b's post", 20, async || texts(&a, "crew").await.iter().any(|t| t == secret)).await;
    wait_until("b to read a's post", 20, async || texts(&b, "our crew").await.iter().any(|t| t == "noted")).await;
    for node in [&a, &b] {
        for row in node.store().conversation(&id, None, 100).unwrap() {
            assert!(!row.frame.windows(4).any(|w| w == b"4711"), "a post's frame holds the text in the clear");
        }
    }

    // The outsider: a post in the clear, and one sealed with a key of its own. Neither is taken.
    let now = shoal_node::messaging::now_ms_for_tests();
    let draft = |seq: u64, text: &str| Draft {
        topic: TopicId(id),
        seq,
        clock: 1,
        time_ms: now,
        parents: Vec::new(),
        text: text.into(),
    };
    let before = msg(&a).counters().posts_rejected;
    let plain = Post::sign(&sk, draft(1, "plain intruder")).unwrap().into_post();
    hostile.publish(gossip.clone(), plain.encode().unwrap()).await.unwrap();
    // Signed properly, sealed with a key that is not the topic's.
    let wrong = GroupKey::from_bytes([9; 32]);
    let sealed = Post::sign_sealed(&sk, draft(2, "sealed intruder"), &wrong, [1; 24]).unwrap().into_post();
    hostile.publish(gossip.clone(), sealed.encode().unwrap()).await.unwrap();
    wait_until("a to reject both", 20, async || msg(&a).counters().posts_rejected >= before + 2).await;
    let at_a = texts(&a, "crew").await;
    assert!(!at_a.iter().any(|t| t.contains("intruder")), "{at_a:?}");
    hostile.shutdown().await;
    a.shutdown().await;
    b.shutdown().await;
}

/// Sender, recipient and three more peers in `topology`; the recipient is away, the letter goes to
/// holders, the sender leaves, the recipient returns and gets it; the holders kept only ciphertext and
/// drop it on the receipt.
async fn offline_letter(topology: Topology) {
    init_tracing();
    let root = tempfile::tempdir().unwrap();
    let hub_home = root.path().join("hub");
    let hub_search = SearchConfig::default()
        .with_index_server(topology == Topology::Hybrid)
        .with_refresh(Duration::from_secs(1), Duration::from_secs(3))
        .with_supernode(true, Duration::from_millis(300), Duration::from_millis(300));
    let hub = Node::start(config(&hub_home, topology, Vec::new(), hub_search)).await.unwrap();
    let hub_addr = hub.addrs().await.unwrap()[0].clone();
    let servers = if topology == Topology::Hybrid { vec![hub_addr.clone()] } else { Vec::new() };
    let search = || {
        SearchConfig::default()
            .with_index_servers(servers.clone())
            .with_refresh(Duration::from_secs(1), Duration::from_secs(3))
            .with_supernode(false, Duration::from_secs(3600), Duration::from_secs(3600))
    };
    let start = async |name: &str| {
        Node::start(config(&root.path().join(name), topology, vec![hub_addr.clone()], search())).await.unwrap()
    };
    let helpers = [start("h1").await, start("h2").await];
    let sender = start("sender").await;
    let recipient = start("recipient").await;
    let recipient_id = recipient.peer_id();
    // Let the topology settle (DHT tables, supernode roles, index registrations).
    tokio::time::sleep(Duration::from_secs(2)).await;
    recipient.shutdown().await;
    drop(recipient);

    let text = "meet at the harbour at noon";
    let sent = msg(&sender).send(&recipient_id.to_string(), text).await.unwrap();
    assert_eq!(sent.status.as_deref(), Some("sent"));
    let holders: Vec<&Node> = std::iter::once(&hub).chain(helpers.iter()).collect();
    let held_count = async || {
        let mut n = 0;
        for h in &holders {
            n += h.store().held_letters().unwrap().len();
        }
        n
    };
    // The DHT gives the peers closest to the recipient; elsewhere the sender's one link (the hub: its
    // neighbour, index server or supernode) is where the topology puts it.
    let want = if topology == Topology::Structured { 2 } else { 1 };
    wait_until("holders to take the letter", 40, async || held_count().await >= want).await;
    let status = msg(&sender).inbox(10).await.unwrap()[0].status.clone().unwrap();
    assert!(status.starts_with("held by"), "{status}");
    sender.shutdown().await;
    drop(sender);

    // What holders keep is ciphertext: not the text, and not openable with their own key.
    for h in &holders {
        for (_, _, to, frame, _) in h.store().held_letters().unwrap() {
            assert!(!frame.windows(text.len()).any(|w| w == text.as_bytes()), "a holder stored the text in clear");
            let sealed = shoal_proto::messaging::direct::Sealed::decode(&frame).unwrap();
            assert_eq!(to, sealed.to);
            let key = shoal_net::identity::load_or_create(&h.config().home.join("identity.key")).unwrap();
            let ed = key.try_into_ed25519().unwrap();
            let sk = ed25519_dalek::SigningKey::from_bytes(ed.secret().as_ref().try_into().unwrap());
            assert!(sealed.open(&sk, u64::MAX / 2).is_err(), "a holder could open the letter");
        }
    }

    let recipient = start("recipient").await;
    assert_eq!(recipient.peer_id(), recipient_id);
    wait_until("the recipient to collect the letter", 40, async || {
        msg(&recipient).inbox(10).await.unwrap().iter().any(|m| m.text == text && !m.mine)
    })
    .await;
    let got = msg(&recipient).inbox(10).await.unwrap();
    assert_eq!(got.iter().filter(|m| m.text == text).count(), 1, "duplicates dropped: {got:?}");
    assert_eq!(got[0].status.as_deref(), Some("received"));
    wait_until("holders to drop the letter after the receipt", 40, async || held_count().await == 0).await;
    recipient.shutdown().await;
    for h in holders {
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_letter_to_an_offline_peer_is_held_and_collected_in_structured() {
    offline_letter(Topology::Structured).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_letter_to_an_offline_peer_is_held_and_collected_in_pure() {
    offline_letter(Topology::Pure).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_letter_to_an_offline_peer_is_held_and_collected_in_hybrid() {
    offline_letter(Topology::Hybrid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_letter_to_an_offline_peer_is_held_and_collected_in_supernode() {
    offline_letter(Topology::Supernode).await;
}

/// `pure` and `supernode`: the holder is the sender's hub; the recipient comes back at a new port
/// attached to another peer only (a bridge linked to the hub), so it never meets the holder and the
/// holder's knocks go to its old address. It finds the holder by looking up its mailbox over the overlay
/// (in `supernode`, through its supernode) and collects.
async fn letter_found_across_the_overlay(topology: Topology) {
    init_tracing();
    let root = tempfile::tempdir().unwrap();
    let supers = topology == Topology::Supernode;
    let search = |super_capable: bool| {
        let s = SearchConfig::default().with_refresh(Duration::from_secs(1), Duration::from_secs(3));
        match super_capable {
            true => s.with_supernode(true, Duration::from_millis(300), Duration::from_millis(300)),
            false => s.with_supernode(false, Duration::from_secs(3600), Duration::from_secs(3600)),
        }
    };
    let start = async |name: &str, boot: Vec<shoal_net::Multiaddr>, super_capable: bool| {
        Node::start(config(&root.path().join(name), topology, boot, search(super_capable))).await.unwrap()
    };
    let hub = start("hub", Vec::new(), true).await;
    let hub_addr = hub.addrs().await.unwrap()[0].clone();
    // In `supernode` the bridge is a second supernode, on the backbone with the hub.
    let bridge = start("bridge", vec![hub_addr.clone()], supers).await;
    let bridge_addr = bridge.addrs().await.unwrap()[0].clone();
    let recipient = start("recipient", vec![hub_addr.clone()], false).await;
    let recipient_id = recipient.peer_id();
    let sender = start("sender", vec![hub_addr.clone()], false).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    recipient.shutdown().await;
    drop(recipient);

    let text = "the boat leaves from the other pier";
    msg(&sender).send(&recipient_id.to_string(), text).await.unwrap();
    wait_until("the hub to hold the letter", 40, async || !hub.store().held_letters().unwrap().is_empty()).await;
    // In `pure` the sender's one neighbour is the hub; in `supernode` it may have met the bridge through
    // the supernodes' gossip and left a copy there too, which the lookup below does not depend on.
    if !supers {
        assert!(bridge.store().held_letters().unwrap().is_empty(), "only the sender's hub should hold");
    }
    sender.shutdown().await;
    drop(sender);
    // The hub answers a lookup of the recipient's mailbox that reaches it through the bridge. (In
    // `supernode` the returning recipient below may also meet the hub as one of its two supernodes, so
    // this is what shows the lookup there.)
    let search = bridge.service::<shoal_node::search::Search>().unwrap();
    wait_until("the bridge's lookup of the mailbox to name the hub", 20, async || {
        let mut found = search.find_providers(shoal_node::messaging::mailbox_id(&recipient_id)).await.unwrap();
        let mut hub_found = false;
        while let Some((peer, _)) = found.recv().await {
            hub_found |= peer == hub.peer_id();
        }
        hub_found
    })
    .await;

    let recipient = start("recipient", vec![bridge_addr], false).await;
    assert_eq!(recipient.peer_id(), recipient_id);
    wait_until("the recipient to find the holder and collect", 40, async || {
        msg(&recipient).inbox(10).await.unwrap().iter().any(|m| m.text == text && !m.mine)
    })
    .await;
    wait_until("the hub to drop the letter after the receipt", 20, async || {
        hub.store().held_letters().unwrap().is_empty()
    })
    .await;
    recipient.shutdown().await;
    bridge.shutdown().await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_recipient_finds_its_holder_across_the_pure_overlay() {
    letter_found_across_the_overlay(Topology::Pure).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_recipient_finds_its_holder_through_its_supernode() {
    letter_found_across_the_overlay(Topology::Supernode).await;
}

/// A hostile peer on the topic: garbage, a tampered post and a forged author are rejected and never
/// forwarded; a flood of valid posts is cut to its author's rate, and the others still talk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgeries_are_rejected_and_a_spammer_is_throttled_while_others_talk() {
    init_tracing();
    let root = tempfile::tempdir().unwrap();
    let (a, a_addr, b) = two_pure(root.path()).await;
    msg(&a).join("rust", None).await.unwrap();
    msg(&b).join("rust", None).await.unwrap();

    let topic = TopicId::public("rust").unwrap();
    let (hostile, sk, gossip) = hostile_on(&a, a_addr, topic).await;
    let now = shoal_node::messaging::now_ms_for_tests();
    let draft = |seq: u64, text: String| Draft { topic, seq, clock: 1, time_ms: now, parents: Vec::new(), text };

    let mut tampered = Post::sign(&sk, draft(1, "signed".into())).unwrap().into_post();
    tampered.content.body = Body::Text("changed after signing".into());
    let mut forged = Post::sign(&sk, draft(2, "in a's name".into())).unwrap().into_post();
    forged.content.author = msg(&a).my_key_for_tests();
    for data in [b"garbage".to_vec(), tampered.encode().unwrap(), forged.encode().unwrap()] {
        hostile.publish(gossip.clone(), data).await.unwrap();
    }
    wait_until("a to reject the three", 20, async || msg(&a).counters().posts_rejected >= 3).await;

    // A flood of valid posts, all at once.
    for seq in 3..203 {
        let post = Post::sign(&sk, draft(seq, format!("spam {seq}"))).unwrap().into_post();
        let _ = hostile.publish(gossip.clone(), post.encode().unwrap()).await;
    }
    msg(&b).post("rust", "still talking").await.unwrap();
    wait_until("a to get b's post through the flood", 30, async || {
        texts(&a, "rust").await.iter().any(|t| t == "still talking")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let at_a = texts(&a, "rust").await;
    let spam = at_a.iter().filter(|t| t.starts_with("spam")).count();
    assert!(spam <= 40, "{spam} of 200 spam posts were taken (burst 20, 2 per second)");
    assert!(!at_a.iter().any(|t| t == "signed" || t == "changed after signing" || t == "in a's name"), "{at_a:?}");
    let at_b = texts(&b, "rust").await;
    assert!(at_b.iter().filter(|t| t.starts_with("spam")).count() <= spam, "b got more than a forwarded");
    // What a judged: the burst it took, the rest over the rate rejected, until gossipsub's score put the
    // spammer below the graylist threshold and dropped the rest unread.
    let c = msg(&a).counters();
    let judged = spam as u64 + c.posts_rejected - 3;
    assert!(c.posts_rejected > 3 && judged < 200, "the spammer was never cut off: {c:?}");
    hostile.shutdown().await;
    a.shutdown().await;
    b.shutdown().await;
}

/// With two peers there is no holder: a letter whose first attempt failed is handed over as soon as its
/// recipient connects again, not at the outbox's next retry a minute later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_letter_goes_as_soon_as_its_recipient_connects_again() {
    init_tracing();
    let root = tempfile::tempdir().unwrap();
    let (a, a_addr, b) = two_pure(root.path()).await;
    let b_id = b.peer_id();
    b.shutdown().await;
    drop(b);
    let sent = msg(&a).send(&b_id.to_string(), "are you back?").await.unwrap();
    assert_eq!(sent.status.as_deref(), Some("sent"));
    // B stays away past the direct attempt's timeout (5 s), so that attempt has failed for sure.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let back = std::time::Instant::now();
    let b = Node::start(config(&root.path().join("b"), Topology::Pure, vec![a_addr], SearchConfig::default()))
        .await
        .unwrap();
    assert_eq!(b.peer_id(), b_id);
    // Well inside the outbox's 60 s retry.
    wait_until("the letter to be delivered", 20, async || {
        msg(&a).inbox(10).await.unwrap().first().and_then(|m| m.status.clone()).as_deref() == Some("delivered")
    })
    .await;
    assert!(msg(&b).inbox(10).await.unwrap().iter().any(|m| m.text == "are you back?" && !m.mine));
    eprintln!("delivered {:?} after the recipient came back", back.elapsed());
    a.shutdown().await;
    b.shutdown().await;
}
