//! Direct letters: sending, holding for others, collecting ours (placing copies: [`super::placing`]).
//!
//! A letter is sealed to its recipient's key (from its peer id) and tried directly at once. If no receipt
//! comes within the outbox's timeout, copies go to holders ([`super::holders`]: the topology's choice),
//! which keep the ciphertext in their catalog; they cannot read it. Whenever a peer connects to us (and
//! every [`SWEEP`] for peers we have not collected from lately) we ask it for letters it keeps for us;
//! we answer each with a receipt, on which it deletes its copy, and pass the receipt on to the sender
//! when we can reach it, so its letter shows as delivered. A peer that connects is also handed our
//! letters for it at once
//! ([`Outbox::on_reachable`](shoal_proto::messaging::delivery::Outbox::on_reachable)). Holders only take
//! a letter from its sender (the stream's authenticated peer) and hand letters only to their recipient.
//!
//! A holder also knocks: it dials the recipients of the letters it keeps (first a while after it took a
//! letter, [`first_knock`], or at once after a restart; then less and less often while one stays away),
//! since a recipient that came back while the holder was
//! away, or that met other peers first, would otherwise wait for a chance meeting. The recipient collects
//! on the connection, as from any peer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::PeerId;
use shoal_net::NetEvent;
use shoal_proto::messaging::delivery::{Action, Status};
use shoal_proto::messaging::direct::{Opened, Receipt, Sealed};
use shoal_proto::messaging::exchange::Frame;
use shoal_proto::messaging::{AuthorKey, MsgId};
use shoal_store::{MessageKind, MessageRecord};

use super::service::{Outgoing, Shared};
use super::streams::{ExchangeFailed, Link};
use super::{MessageView, MessagingError, ids, now_ms};
use crate::NodeError;
use crate::blocking::blocking;

/// How often connected peers we have not collected from lately are asked again.
const SWEEP: Duration = Duration::from_secs(15);
/// A peer collected from is asked again after this long (if we meet it again).
const RECOLLECT: Duration = Duration::from_secs(300);
/// Letters handed over in one collection, at most (the rest at the next).
const MAX_HANDOVER: usize = 256;
/// Waits before each attempt to collect from a peer that just connected. A failed exchange (the holder's
/// streams busy, a frame timed out) is tried again within seconds: the connection stays up, so neither
/// a knock nor the next [`SWEEP`] would come for up to 15 s, and that was the tail of late letters.
const COLLECT_RETRIES: [Duration; 3] = [Duration::ZERO, Duration::from_secs(1), Duration::from_secs(3)];
/// Peers whose last collection is remembered; disconnected ones are forgotten first.
const MAX_COLLECTED: usize = 4096;
/// How often holders knock, and the first wait per recipient; it doubles up to [`KNOCK_MAX`].
const KNOCK: Duration = Duration::from_secs(5);
/// The longest wait between knocks at one recipient's door.
const KNOCK_MAX: Duration = Duration::from_secs(30 * 60);
/// The first knock for letters taken to hold, in `structured`, where each knock is a DHT lookup. The
/// recipient's own lookups after its start (2, 10 and 60 s) reach the holders closest to its id, which is
/// where `structured` places letters; a holder's knock is the fallback for holders those lookups missed.
/// With the first knock at once and then every [`KNOCK`], doubling, the 2-minute churn scenario of 200
/// peers ran ~3,000 knock lookups (9,000 on a loaded host) while the recipients were away, and Kademlia
/// took a third of the process's CPU (`perf`); late letters followed the host's load.
const KNOCK_LOOKUP_FIRST: Duration = Duration::from_secs(30);
/// Recipients knocked at in one round, at most (each a DHT lookup and a dial).
const KNOCKS_PER_ROUND: usize = 8;
/// How long a lookup of the peers closest to our own id may take before we dial what it found. On a
/// loaded host (the churn scenario with one of two cores kept busy) these lookups waited out the DHT's
/// 10 s query timeout for a peer that did not answer, and letters came 10-13 s after the return.
const OWN_LOOKUP_WITHIN: Duration = Duration::from_secs(3);
/// Dials at once to the peers closest to our own id after a start (where `structured` keeps our letters).
const DIALS_AT_ONCE: usize = 4;

/// How long after a letter is taken to hold its recipient is first knocked at (a holder that restarts
/// knocks at once: the recipient may have come back meanwhile).
fn first_knock(topology: crate::config::Topology) -> Duration {
    if topology == crate::config::Topology::Structured { KNOCK_LOOKUP_FIRST } else { KNOCK }
}

fn status_text(s: Status) -> String {
    match s {
        Status::Sent => "sent".into(),
        Status::Held { by } => format!("held by {by}"),
        Status::Delivered => "delivered".into(),
        Status::Expired => "expired".into(),
    }
}

/// Takes up what a previous run left: letters kept for others, and our letters not yet delivered.
pub(crate) async fn resume(shared: &Arc<Shared>) -> Result<(), NodeError> {
    let store = shared.store.clone();
    let (held, ours) =
        blocking(move || Ok::<_, shoal_store::StoreError>((store.held_letters()?, store.letters(100_000)?))).await?;
    let now = Instant::now();
    let mut st = shared.state();
    for (id, _, _, frame, _) in held {
        if let Ok(sealed) = Sealed::decode(&frame) {
            let _ = st.holding.offer(id, sealed, now);
        }
    }
    for m in ours {
        let waiting = matches!(m.status.as_deref(), Some(s) if s == "sent" || s.starts_with("held"));
        if m.author != shared.my_key || !waiting {
            continue;
        }
        let Ok(sealed) = Sealed::decode(&m.frame) else { continue };
        let Ok(id) = sealed.id() else { continue };
        if st.outbox.send(id, sealed.to, now).is_ok() {
            st.outgoing.insert(id, Outgoing { sealed, letter: m.id, since: now });
        }
    }
    Ok(())
}

/// Writes, seals and starts delivering a letter.
pub(crate) async fn send(shared: &Arc<Shared>, peer: PeerId, text: &str) -> Result<MessageView, NodeError> {
    if text.trim().is_empty() {
        return Err(MessagingError::Compose("nothing to send: the text is empty".into()).into());
    }
    if peer == shared.peer_id {
        return Err(MessagingError::Compose("a letter to yourself: give another peer's id".into()).into());
    }
    let to = ids::author_of(&peer).ok_or_else(|| MessagingError::NoKey(peer.to_string()))?;
    let time_ms = now_ms();
    let (sealed, letter) = Sealed::seal(&shared.me, &to, time_ms, rand::random(), text.to_string())
        .map_err(|e| MessagingError::Compose(format!("cannot seal the letter: {e}")))?;
    let id = sealed.id().map_err(|e| MessagingError::Compose(e.to_string()))?;
    let frame = sealed.encode().map_err(|e| MessagingError::Compose(e.to_string()))?;
    shared.state().outbox.send(id, to, Instant::now()).map_err(MessagingError::from)?;
    let rec = MessageRecord {
        id: letter,
        kind: MessageKind::Letter,
        conversation: to,
        author: shared.my_key,
        time_ms,
        clock: time_ms,
        gap: false,
        text: text.to_string(),
        status: Some("sent".into()),
        frame,
    };
    shared.state().outgoing.insert(id, Outgoing { sealed, letter, since: Instant::now() });
    shared.count(|c| c.letters_sent += 1);
    let view = shared.view(&rec, &shared.contacts().await);
    shared.save(vec![rec]).await;
    tick(shared).await;
    Ok(view)
}

/// The outbox's and the holding's timers.
pub(crate) async fn tick(shared: &Arc<Shared>) {
    let now = Instant::now();
    let (actions, expired) = {
        let mut st = shared.state();
        (st.outbox.poll(now), st.holding.expire(now))
    };
    drop_held(shared, expired).await;
    let mut places = Vec::new();
    let mut direct: HashMap<AuthorKey, Vec<MsgId>> = HashMap::new();
    for a in actions {
        match a {
            Action::Direct { id, to } => direct.entry(to).or_default().push(id),
            Action::Place { .. } => places.push(a),
            Action::Status { id, status } => set_status(shared, id, status).await,
        }
    }
    super::placing::start(shared, places);
    // One connection attempt per recipient, however many letters wait for it: a recipient that is away
    // costs one dial, not one per letter.
    for (to, letters) in direct {
        let s = shared.clone();
        shared.tasks.spawn(async move {
            let Some(peer) = ids::peer_of(&to) else { return };
            let up = tokio::time::timeout(super::streams::OPEN_TIMEOUT, s.net.connect(peer, Vec::new())).await;
            if !matches!(up, Ok(Ok(()))) {
                tracing::debug!(%peer, letters = letters.len(), "recipient not reachable (holders will carry)");
                return;
            }
            for id in letters {
                if let Err(e) = super::streams::with_retries(|| deliver(&s, id, to)).await {
                    tracing::debug!(error = %e, "letter not delivered directly (holders will carry it)");
                }
            }
        });
    }
}

/// Deletes held letters from the catalog (delivered or expired).
async fn drop_held(shared: &Shared, ids: Vec<MsgId>) {
    if ids.is_empty() {
        return;
    }
    let store = shared.store.clone();
    let r = blocking(move || ids.iter().try_for_each(|id| store.drop_held(id).map(|_| ()))).await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "cannot delete held letters");
    }
}

pub(crate) async fn set_status(shared: &Shared, id: MsgId, status: Status) {
    let (letter, to, since) = {
        let mut st = shared.state();
        let Some(o) = st.outgoing.get(&id) else { return };
        let r = (o.letter, o.sealed.to, o.since);
        if matches!(status, Status::Delivered | Status::Expired) {
            st.outgoing.remove(&id);
        }
        r
    };
    if status == Status::Delivered {
        shared.count(|c| c.letters_delivered += 1);
        shared.delivery_seconds.observe(since.elapsed().as_secs_f64());
    }
    let text = status_text(status);
    let (store, t) = (shared.store.clone(), text.clone());
    if let Err(e) = blocking(move || store.set_message_status(&letter, &t)).await {
        tracing::warn!(error = %e, "cannot record a letter's state");
    }
    shared.events.emit(super::Event::LetterStatus { id: ids::hex(&letter), to: ids::peer_text(&to), status: text });
}

fn sealed_of(shared: &Shared, id: &MsgId) -> Option<Sealed> {
    shared.state().outgoing.get(id).map(|o| o.sealed.clone())
}

/// Hands a letter to its recipient and takes its receipt.
async fn deliver(shared: &Arc<Shared>, id: MsgId, to: AuthorKey) -> Result<(), ExchangeFailed> {
    let (Some(sealed), Some(peer)) = (sealed_of(shared, &id), ids::peer_of(&to)) else { return Ok(()) };
    let mut link = Link::open(shared, peer).await?;
    link.send(&Frame::Letter(sealed)).await?;
    match link.expect().await? {
        Frame::Receipt(r) => {
            link.close().await;
            on_receipt(shared, peer, r).await;
            Ok(())
        }
        Frame::Refused { why, .. } => {
            tracing::debug!(%peer, why, "recipient refused a letter");
            Ok(())
        }
        _ => Err(ExchangeFailed::Unexpected("answered a letter with something else")),
    }
}

/// A receipt for one of our letters (from its recipient, directly or passed on later).
pub(crate) async fn on_receipt(shared: &Shared, _from: PeerId, r: Receipt) {
    let action = {
        let mut st = shared.state();
        let Some(o) = st.outgoing.get(&r.sealed) else { return };
        if !r.is_from(&o.sealed.to) {
            return;
        }
        st.outbox.on_receipt(&r.sealed)
    };
    if let Some(Action::Status { id, status }) = action {
        set_status(shared, id, status).await;
    }
}

/// Keeps a letter that arrived (from its sender or a holder); whether it is new. Its receipt is due
/// either way.
async fn accept(shared: &Shared, opened: Opened, sealed: &Sealed) -> bool {
    if !shared.state().inbox.accept(opened.id, Instant::now()) {
        return false;
    }
    let l = opened.letter;
    let rec = MessageRecord {
        id: opened.id,
        kind: MessageKind::Letter,
        conversation: l.from,
        author: l.from,
        time_ms: l.time_ms,
        clock: l.time_ms,
        gap: false,
        text: l.text,
        status: Some("received".into()),
        frame: sealed.encode().unwrap_or_default(),
    };
    shared.count(|c| c.letters_received += 1);
    shared.save(vec![rec]).await;
    true
}

/// A letter handed to us by its sender.
pub(crate) async fn take_letter(shared: &Shared, mut link: Link, sealed: Sealed) -> Result<(), ExchangeFailed> {
    let id = sealed.id().map_err(|_| ExchangeFailed::Unexpected("an unencodable letter"))?;
    match sealed.open(&shared.me, now_ms()) {
        Ok(opened) => {
            accept(shared, opened, &sealed).await;
            link.send(&Frame::Receipt(Receipt::new(&shared.me, id))).await?;
        }
        Err(e) => link.send(&Frame::refused(id, &e.to_string())).await?,
    }
    link.close().await;
    Ok(())
}

/// A sender asks us to keep letters for their recipients: `Hold`s back to back (up to
/// [`super::placing::MAX_HOLDS_PER_STREAM`]), each answered with `Taken` or `Refused`, until `Done`.
pub(crate) async fn take_hold(shared: &Shared, mut link: Link, first: Sealed) -> Result<(), ExchangeFailed> {
    let mut next = Some(first);
    let mut n = 0;
    while let Some(sealed) = next.take() {
        let answer = hold_one(shared, link.peer, sealed).await?;
        link.send(&answer).await?;
        n += 1;
        if n >= super::placing::MAX_HOLDS_PER_STREAM {
            break;
        }
        next = match link.recv().await? {
            Some(Frame::Hold(s)) => Some(s),
            Some(Frame::Done) | None => None,
            Some(_) => return Err(ExchangeFailed::Unexpected("sent something other than letters to hold")),
        };
    }
    link.close().await;
    Ok(())
}

async fn hold_one(shared: &Shared, from: PeerId, sealed: Sealed) -> Result<Frame, ExchangeFailed> {
    let id = sealed.id().map_err(|_| ExchangeFailed::Unexpected("an unencodable letter"))?;
    if ids::author_of(&from) != Some(sealed.from) {
        return Ok(Frame::refused(id, "only a letter's sender may leave it with a holder"));
    }
    if sealed.to == shared.my_key {
        return Ok(Frame::refused(id, "this peer is the recipient: send the letter directly"));
    }
    let offered = {
        let mut st = shared.state();
        let now = Instant::now();
        let offered = st.holding.offer(id, sealed.clone(), now);
        if offered.is_ok() {
            // The sender has just failed to reach the recipient: the first knock waits.
            let first = first_knock(shared.config.topology);
            st.knocks.entry(sealed.to).or_insert((now + first, (first * 2).min(KNOCK_MAX)));
        }
        offered
    };
    if let Err(refusal) = offered {
        shared.count(|c| c.holds_refused += 1);
        return Ok(Frame::refused(id, &refusal.to_string()));
    }
    let (store, now) = (shared.store.clone(), now_ms());
    let frame = sealed.encode().unwrap_or_default();
    match blocking(move || store.hold_letter(&id, &sealed.from, &sealed.to, &frame, now)).await {
        Ok(()) => Ok(Frame::Taken { id }),
        Err(e) => {
            tracing::warn!(error = %e, "cannot keep a letter for another peer");
            Ok(Frame::refused(id, "the holder could not save the letter"))
        }
    }
}

/// A recipient collects what we keep for it.
pub(crate) async fn hand_over(shared: &Shared, mut link: Link) -> Result<(), ExchangeFailed> {
    let Some(key) = ids::author_of(&link.peer) else { return Ok(()) };
    let letters: Vec<Sealed> = {
        let st = shared.state();
        st.holding.for_recipient(&key).into_iter().take(MAX_HANDOVER).map(|(_, s)| s.clone()).collect()
    };
    for s in letters {
        link.send(&Frame::Letter(s)).await?;
    }
    link.send(&Frame::Done).await?;
    let mut gone = Vec::new();
    for _ in 0..=MAX_HANDOVER {
        match link.recv().await? {
            Some(Frame::Receipt(r)) => {
                if shared.state().holding.on_receipt(&r) {
                    gone.push(r.sealed);
                }
            }
            Some(Frame::Done) | None => break,
            Some(_) => return Err(ExchangeFailed::Unexpected("answered letters with something else")),
        }
    }
    drop_held(shared, gone).await;
    link.close().await;
    Ok(())
}

/// Asks `peer` for the letters it keeps for us; returns how many were new.
async fn collect(shared: &Arc<Shared>, peer: PeerId) -> Result<usize, ExchangeFailed> {
    let mut link = Link::open(shared, peer).await?;
    link.send(&Frame::Collect).await?;
    let mut receipts = Vec::new();
    let mut new = 0;
    for _ in 0..=MAX_HANDOVER {
        match link.expect().await? {
            Frame::Letter(s) => {
                let Ok(id) = s.id() else { continue };
                if let Ok(opened) = s.open(&shared.me, now_ms()) {
                    let from = opened.letter.from;
                    if accept(shared, opened, &s).await {
                        new += 1;
                    }
                    receipts.push((from, Receipt::new(&shared.me, id)));
                }
            }
            Frame::Done => break,
            _ => return Err(ExchangeFailed::Unexpected("handed over something other than letters")),
        }
    }
    for (_, r) in &receipts {
        link.send(&Frame::Receipt(r.clone())).await?;
    }
    link.send(&Frame::Done).await?;
    link.close().await;
    // The senders learn their letters arrived, if we can reach them now.
    for (from, r) in receipts {
        let Some(sender) = ids::peer_of(&from) else { continue };
        let s = shared.clone();
        shared.tasks.spawn(async move {
            if let Ok(mut link) = Link::open(&s, sender).await
                && link.send(&Frame::Receipt(r)).await.is_ok()
            {
                link.close().await;
            }
        });
    }
    Ok(new)
}

fn due(collected: &HashMap<PeerId, Instant>, peer: &PeerId, now: Instant) -> bool {
    collected.get(peer).is_none_or(|at| now.duration_since(*at) >= RECOLLECT)
}

/// `peer` connected: our letters for it go now rather than at the outbox's next retry (with two peers
/// and no holder, a letter whose first attempt failed would otherwise wait a minute on a live connection).
fn retry_direct(shared: &Arc<Shared>, peer: PeerId) {
    let Some(to) = ids::author_of(&peer) else { return };
    let due = shared.state().outbox.on_reachable(&to, Instant::now());
    if due.is_empty() {
        return;
    }
    let s = shared.clone();
    shared.tasks.spawn(async move {
        for a in due {
            if let Action::Direct { id, to } = a
                && let Err(e) = super::streams::with_retries(|| deliver(&s, id, to)).await
            {
                tracing::debug!(error = %e, "letter not delivered on connection (holders will carry it)");
            }
        }
    });
}

pub(crate) fn collect_from(shared: &Arc<Shared>, peer: PeerId) {
    let s = shared.clone();
    shared.tasks.spawn(async move {
        let asked = Instant::now();
        for (attempt, wait) in COLLECT_RETRIES.iter().enumerate() {
            tokio::time::sleep(*wait).await;
            match super::streams::with_retries(|| collect(&s, peer)).await {
                Ok(n) => {
                    let mut st = s.state();
                    if st.collected.len() >= MAX_COLLECTED {
                        st.collected.clear();
                    }
                    st.collected.insert(peer, Instant::now());
                    drop(st);
                    tracing::debug!(
                        me = %s.peer_id,
                        %peer,
                        letters = n,
                        attempt,
                        took_ms = asked.elapsed().as_millis() as u64,
                        "collected letters kept for us"
                    );
                    return;
                }
                Err(e) => tracing::debug!(me = %s.peer_id, %peer, attempt, error = %e, "cannot collect letters"),
            }
        }
    });
}

/// Collects from every peer we meet, and from those connected that were not collected from lately. In
/// `structured`, looks up the peers closest to our own id first: that is where holders put our letters;
/// in `pure` and `supernode`, the peers that advertise our mailbox ([`super::holders`]). Every [`KNOCK`],
/// advertises the mailboxes of what we hold and knocks.
pub(crate) async fn watch_connections(shared: Arc<Shared>) {
    let mut events = shared.net.subscribe();
    if shared.config.topology == crate::config::Topology::Structured {
        let s = shared.clone();
        shared.tasks.spawn(async move {
            // The routing table fills as bootstrap peers answer: look a little later, and again. The times
            // count from the start, not from the end of the last round's dials, which can take a while.
            let start = tokio::time::Instant::now();
            for at in [2, 10, 60] {
                tokio::time::sleep_until(start + Duration::from_secs(at)).await;
                // A few at a time: every peer does this at start, and 200 starting peers dialling 20 each at
                // once slowed the placing of letters in the simulator (1,000 letters: 91-94% on time, against
                // 99.3% one at a time). One at a time, though, a holder after two stale addresses in the list
                // was reached only 10 s later (each stale dial waits out its timeout).
                let closest =
                    s.net.closest_peers_within(s.peer_id.to_bytes(), OWN_LOOKUP_WITHIN).await.unwrap_or_default();
                tracing::debug!(me = %s.peer_id, at, found = closest.len(), "dialling the peers closest to us");
                futures::stream::iter(closest)
                    .for_each_concurrent(DIALS_AT_ONCE, |p| {
                        let s = s.clone();
                        async move {
                            let _ = tokio::time::timeout(Duration::from_secs(5), s.net.connect(p, Vec::new())).await;
                        }
                    })
                    .await;
            }
        });
    }
    // In `pure` and `supernode`, our holders may be peers we would never meet: ask who they are.
    super::holders::look_up(&shared);
    let mut sweep = tokio::time::interval(SWEEP);
    let mut knock = tokio::time::interval_at(tokio::time::Instant::now() + KNOCK, KNOCK);
    let mut advertised = std::collections::HashSet::new();
    loop {
        tokio::select! {
            _ = knock.tick() => {
                super::holders::advertise(&shared, &mut advertised).await;
                knock_round(&shared).await;
            }
            ev = events.recv() => match ev {
                Ok(NetEvent::PeerConnected { peer, .. }) => {
                    collect_from(&shared, peer);
                    retry_direct(&shared, peer);
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = sweep.tick() => {
                let now = Instant::now();
                for p in shared.net.peers().await.unwrap_or_default() {
                    if due(&shared.state().collected, &p.peer, now) {
                        collect_from(&shared, p.peer);
                    }
                }
            }
        }
    }
}

/// Dials the recipients whose knock is due (a few per round), so that they collect what we keep for them.
async fn knock_round(shared: &Arc<Shared>) {
    let now = Instant::now();
    if shared.state().holding.is_empty() {
        shared.state().knocks.clear();
        return;
    }
    let connected: std::collections::HashSet<PeerId> =
        shared.net.peers().await.unwrap_or_default().into_iter().map(|p| p.peer).collect();
    let due: Vec<PeerId> = {
        let mut st = shared.state();
        let waiting: std::collections::HashSet<AuthorKey> = st.holding.recipients().copied().collect();
        st.knocks.retain(|k, _| waiting.contains(k));
        let mut due = Vec::new();
        for key in waiting {
            let Some(peer) = ids::peer_of(&key) else { continue };
            let (next, wait) = st.knocks.get(&key).copied().unwrap_or((now, KNOCK));
            if due.len() >= KNOCKS_PER_ROUND || next > now || connected.contains(&peer) {
                continue;
            }
            st.knocks.insert(key, (now + wait, (wait * 2).min(KNOCK_MAX)));
            due.push(peer);
        }
        due
    };
    for peer in due {
        let s = shared.clone();
        shared.tasks.spawn(async move {
            // In `structured` the lookup is what finds the recipient's current address.
            if s.config.topology == crate::config::Topology::Structured {
                let _ = s.net.closest_peers(peer.to_bytes()).await;
            }
            match tokio::time::timeout(Duration::from_secs(5), s.net.connect(peer, Vec::new())).await {
                Ok(Ok(())) => {
                    tracing::debug!(me = %s.peer_id, %peer, "knocked: the recipient of letters we hold is here")
                }
                _ => tracing::debug!(me = %s.peer_id, %peer, "knocked: the recipient of letters we hold is away"),
            }
        });
    }
}
