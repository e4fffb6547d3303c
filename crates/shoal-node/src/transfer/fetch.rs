//! One blob's download as a state machine: which providers are in it, when to look for more, when work is
//! handed out, when to checkpoint, ask again, give up. It takes the sessions' events and `now` and returns
//! [`Step`]s; it holds no socket, file or task. [`super::download`]'s loop owns those: it carries the steps
//! out (opens and closes sessions, sends them requests, writes checkpoints) and feeds the events back.
//!
//! The piece picking itself is the sans-IO [`Scheduler`] of `shoal-proto`; this layer adds what a whole
//! download needs around it: the blob's size is fixed only once it is proven (the size a ticket or a
//! folder's collection names, or else a claimed size whose last chunk verifies with its proof, see
//! `shoal_store::proof`; nothing is allocated before that, and a provider that claims another size is
//! dropped as a liar), a download whose request names the size begins before any answer (its first requests
//! leave with the `Have`), providers that answer soon after the first are waited for (`gather`) so that work
//! is spread over all of them, providers found later join, partial providers are re-asked what they have, a provider
//! that had answered and whose session broke is opened again (a few times, backing off), and the download
//! fails with a reason when nothing useful arrived for `stall_timeout`.
//!
//! Beside it: `fetch/output.rs` (the steps, answers and tally it hands back), `fetch/reopen.rs` (providers
//! whose session broke, to open again) and `fetch/tests.rs`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use shoal_proto::transfer::{Action, ChunkSpan, Config as SchedConfig, DropReason, Failure, Layout, Scheduler};
use shoal_store::ContentId;

pub(crate) use self::output::{Answer, Done, Step, Tally};
use self::reopen::Reopens;
use super::download::Rates;
use crate::NodeError;
use crate::config::DownloadTuning;

/// The largest blob a provider may claim (1 PiB); anything larger is a lie.
const MAX_SIZE: u64 = 1 << 50;
/// How often a provider lookup may start again.
const LOOKUP_EVERY: Duration = Duration::from_secs(3);
/// A download keeps looking for providers (every [`LOOKUP_EVERY`] at first, then less often) until this
/// many are in it: more sources are more speed where each link is slow, and a provider that appears during
/// a download joins it.
const ENOUGH_PROVIDERS: usize = 8;
/// How often providers that are still downloading are asked again what they have.
const HAVE_EVERY: Duration = Duration::from_secs(1);
/// How often a download's progress watchers are woken. Waking them for every piece is a thread hand-off
/// per piece, and each snapshot of the rates formats every provider's peer id (`bs58` showed in `perf`
/// of a 64 KiB-piece download; the throughput change was within noise). Readers that look on their own
/// schedule see the counts as they are.
pub(crate) const PUBLISH_EVERY: Duration = Duration::from_millis(50);

/// What a provider said it has, before the size is proven.
struct Claim {
    size: u64,
    spans: Vec<ChunkSpan>,
    collection: bool,
}

struct Active {
    layout: Layout,
    sched: Scheduler<PeerId>,
    collection: bool,
    started: Instant,
}

/// One blob's download.
pub(crate) struct Fetch {
    id: ContentId,
    tuning: DownloadTuning,
    discover: bool,
    collection_hint: Option<bool>,
    /// The size the request names (a ticket's, a folder entry's): claims of another are lies.
    expected_size: Option<u64>,
    /// Answers held until the size is proven, and the provider asked to prove the size it claims.
    claims: HashMap<PeerId, Claim>,
    probing: Option<PeerId>,
    /// Providers with an open session.
    sessions: HashSet<PeerId>,
    tried: HashSet<PeerId>,
    answered: HashSet<PeerId>,
    partial_peers: HashSet<PeerId>,
    hints: HashMap<PeerId, Vec<Multiaddr>>,
    looking: bool,
    last_lookup: Option<Instant>,
    /// Lookups made while the download was working (for the back-off in [`Fetch::lookup`]).
    extra_lookups: u32,
    active: Option<Active>,
    last_checkpoint: Instant,
    last_have: Instant,
    last_useful: Instant,
    first_answer: Option<Instant>,
    published: Instant,
    dropped: HashMap<PeerId, String>,
    /// Providers whose session broke and that will be opened again.
    reopens: Reopens,
    rates: Rates,
    pub(crate) tally: Tally,
}

impl Fetch {
    /// A download of `id` from `providers` (the request's hints; `me` is left out) and, if `discover`,
    /// from whoever a lookup finds. Returns the sessions to open.
    pub(crate) fn new(
        id: ContentId,
        me: PeerId,
        providers: Vec<(PeerId, Vec<Multiaddr>)>,
        discover: bool,
        collection_hint: Option<bool>,
        tuning: DownloadTuning,
        now: Instant,
    ) -> (Self, Vec<Step>) {
        let mut f = Self {
            id,
            tuning,
            discover,
            collection_hint,
            expected_size: None,
            claims: HashMap::new(),
            probing: None,
            sessions: HashSet::new(),
            tried: HashSet::from([me]),
            answered: HashSet::new(),
            partial_peers: HashSet::new(),
            hints: HashMap::new(),
            looking: false,
            last_lookup: None,
            extra_lookups: 0,
            active: None,
            last_checkpoint: now,
            last_have: now,
            last_useful: now,
            first_answer: None,
            published: now,
            dropped: HashMap::new(),
            reopens: Reopens::default(),
            rates: Rates::default(),
            tally: Tally::default(),
        };
        let steps = providers.into_iter().filter_map(|(p, addrs)| f.open(p, addrs)).collect();
        (f, steps)
    }

    fn open(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) -> Option<Step> {
        if !self.tried.insert(peer) {
            return None;
        }
        self.hints.insert(peer, addrs.clone());
        self.sessions.insert(peer);
        Some(Step::Open { peer, addrs })
    }

    fn close(&mut self, peer: &PeerId) -> Option<Step> {
        self.sessions.remove(peer).then_some(Step::Close(*peer))
    }

    /// Whether to start a provider lookup now: we look when no provider answered yet, when pieces are
    /// missing that no provider has, and while fewer than [`ENOUGH_PROVIDERS`] are in the download; at most
    /// every few seconds and one lookup at a time.
    pub(crate) fn lookup(&mut self, now: Instant) -> Option<Step> {
        let urgent = self.answered.is_empty()
            || self.active.as_ref().is_some_and(|a| a.sched.needs_providers() || a.sched.peer_count() == 0);
        let want_more = urgent || self.sessions.len() < ENOUGH_PROVIDERS;
        let want_more = want_more && !self.active.as_ref().is_some_and(|a| a.sched.is_finished());
        // Looking for more while the download works backs off (3, 6, 12, 24, then 48 s): in the pure topology
        // a lookup is a flood query, and a long download must not send one every 3 s.
        let every = if urgent { LOOKUP_EVERY } else { LOOKUP_EVERY * (1 << self.extra_lookups.min(4)) };
        let due = self.last_lookup.is_none_or(|t| now.duration_since(t) > every);
        if !(self.discover && want_more && !self.looking && due) {
            return None;
        }
        if !urgent && self.last_lookup.is_some() {
            self.extra_lookups += 1;
        }
        self.looking = true;
        self.last_lookup = Some(now);
        Some(Step::Lookup)
    }

    /// A lookup found `peer`: it joins unless it is already in.
    pub(crate) fn on_found(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) -> Option<Step> {
        self.open(peer, addrs)
    }

    /// The lookup ended.
    pub(crate) fn on_lookup_done(&mut self) {
        self.looking = false;
    }

    /// The request names the blob's size (a ticket, or the folder the file is in): no proof is needed, and a
    /// provider that claims another size is lying. A size of 0 for an id that is not the empty blob's is
    /// ignored (a forged ticket would otherwise finish at once with an empty file): providers prove theirs.
    pub(crate) fn expect_size(&mut self, size: Option<u64>) {
        let possible = |s: &u64| *s <= MAX_SIZE && (*s > 0 || shoal_store::proof::empty_is_proven(&self.id));
        self.expected_size = size.filter(possible);
    }

    /// The size and kind the request names, when they are enough to begin before any provider answers
    /// (a ticket, a folder's entry) and there are providers to ask: the loop then opens the partial file and
    /// calls [`Fetch::begin`] at once, so that the first requests leave with the `Have`, a round trip sooner.
    pub(crate) fn named(&self) -> Option<(u64, bool)> {
        let named = self.expected_size.zip(self.collection_hint);
        named.filter(|_| self.active.is_none() && !self.sessions.is_empty())
    }

    /// A provider said it has the blob (`spans` of it, or all).
    pub(crate) fn on_have(
        &mut self,
        peer: PeerId,
        size: u64,
        spans: &[ChunkSpan],
        collection: bool,
        now: Instant,
    ) -> Answer {
        self.answered.insert(peer);
        self.reopens.answered(&peer);
        if self.first_answer.is_none() {
            self.first_answer = Some(now);
            // The lookup at the start ran before any connection: with no DHT neighbour yet it found nobody
            // (over a 100 ms link the first answer takes several round trips). The provider that answered
            // is a neighbour now: look again at once.
            self.last_lookup = None;
        }
        if size > MAX_SIZE {
            return Answer::Steps(self.liar(peer, format!("claims {size} bytes, more than any blob may have")));
        }
        let Some(a) = self.active.as_mut() else {
            return self.before_begin(peer, Claim { size, spans: spans.to_vec(), collection });
        };
        if size != a.layout.size() {
            let why = format!("claims {size} bytes where the blob has {}", a.layout.size());
            return Answer::Steps(self.liar(peer, why));
        }
        let have = a.layout.pieces_in(spans);
        let full = have.is_full();
        if full {
            self.partial_peers.remove(&peer);
        } else {
            self.partial_peers.insert(peer);
        }
        a.sched.add_peer(peer, if full { None } else { Some(have) }, now);
        Answer::Steps(Vec::new())
    }

    /// A provider that told a provable lie about the blob: it leaves the download, with the reason.
    fn liar(&mut self, peer: PeerId, why: String) -> Vec<Step> {
        tracing::warn!(%peer, %why, "dropping a provider that lies about the blob's size");
        self.dropped.insert(peer, why);
        self.claims.remove(&peer);
        if let Some(a) = self.active.as_mut() {
            a.sched.remove_peer(&peer);
        }
        self.close(&peer).into_iter().collect()
    }

    /// An answer while the size is not yet proven: held, and the size checked.
    fn before_begin(&mut self, peer: PeerId, claim: Claim) -> Answer {
        let collection = self.collection_hint.unwrap_or(claim.collection);
        if let Some(expected) = self.expected_size {
            if claim.size != expected {
                let why = format!("claims {} bytes where the request says {expected}", claim.size);
                return Answer::Steps(self.liar(peer, why));
            }
            self.claims.insert(peer, claim);
            return Answer::Begin { size: expected, collection };
        }
        if claim.size == 0 {
            if !shoal_store::proof::empty_is_proven(&self.id) {
                return Answer::Steps(self.liar(peer, "claims the blob is empty, which its id contradicts".into()));
            }
            self.claims.insert(peer, claim);
            return Answer::Begin { size: 0, collection };
        }
        self.claims.insert(peer, claim);
        Answer::Steps(self.next_probe().into_iter().collect())
    }

    /// Asks a provider whose claim is held to prove it, unless one is being asked already. Only providers
    /// that say they have the last chunk can.
    fn next_probe(&mut self) -> Option<Step> {
        if self.probing.is_some() || self.active.is_some() {
            return None;
        }
        let (peer, size, span) = self.claims.iter().find_map(|(p, c)| {
            let last = shoal_store::proof::last_chunk(c.size)?;
            let has = c.spans.iter().any(|s| s.start <= last.start && s.end >= last.end);
            (has && self.sessions.contains(p)).then_some((*p, c.size, last))
        })?;
        self.probing = Some(peer);
        Some(Step::Probe { peer, size, span })
    }

    /// What the provider asked by [`Step::Probe`] sent: `Ok` if its last chunk verified against the id for
    /// the size it claims. A proven size begins the download; a failed proof drops the provider and asks the
    /// next one.
    pub(crate) fn on_size_proof(&mut self, peer: PeerId, size: u64, proof: Result<(), String>) -> Answer {
        if self.probing == Some(peer) {
            self.probing = None;
        }
        if self.active.is_some() {
            return Answer::Steps(Vec::new());
        }
        match proof {
            Ok(()) => {
                let claimed = self.claims.get(&peer).map(|c| (c.size, c.collection));
                match claimed {
                    Some((s, collection)) if s == size => {
                        Answer::Begin { size, collection: self.collection_hint.unwrap_or(collection) }
                    }
                    _ => Answer::Steps(self.next_probe().into_iter().collect()),
                }
            }
            Err(why) => {
                let mut steps = self.liar(peer, format!("claims {size} bytes but cannot prove it ({why})"));
                steps.extend(self.next_probe());
                Answer::Steps(steps)
            }
        }
    }

    /// The partial file is open with `verified` ranges already there (a resumed download). Returns the
    /// bytes those cover, and what the held answers lead to: providers of the proven size join, the others
    /// are dropped as liars.
    pub(crate) fn begin(
        &mut self,
        size: u64,
        verified: &[ChunkSpan],
        collection: bool,
        now: Instant,
    ) -> (u64, Vec<Step>) {
        let layout = Layout::new(size);
        let have = layout.pieces_in(verified);
        let resumed: u64 = have
            .iter()
            .map(|i| {
                let r = layout.piece_bytes(i);
                r.end - r.start
            })
            .sum();
        self.tally.resumed += resumed;
        let cfg = SchedConfig::default()
            .with_piece_bytes(layout.piece_size())
            .with_window(0, self.tuning.max_bytes_in_flight)
            .with_slow_after(self.tuning.slow_after)
            .with_tie_break(rand::random());
        let sched = Scheduler::new(cfg, layout.piece_count(), have.iter());
        self.last_useful = now;
        self.active = Some(Active { layout, sched, collection, started: now });
        self.probing = None;
        let mut steps = Vec::new();
        for (peer, c) in std::mem::take(&mut self.claims) {
            if self.sessions.contains(&peer)
                && let Answer::Steps(s) = self.on_have(peer, c.size, &c.spans, c.collection, now)
            {
                steps.extend(s);
            }
        }
        // With the size named by the request, providers that have not answered yet join as if they had the
        // whole blob: their first requests leave right behind the `Have`. One that has less says so in its
        // answer, and a `Get` for a piece it lacks is answered `NotFound` (a missing piece, which costs it
        // nothing); one without the blob answers the `Have` with `NotFound` and leaves; one that claims
        // another size is a liar as before. Pieces verify against the id whoever sends them. (A size that
        // had to be proven keeps the other answers waiting: `gather`.)
        let named = self.expected_size.is_some();
        if named && let Some(a) = self.active.as_mut() {
            for peer in self.sessions.iter().filter(|p| !self.answered.contains(p)) {
                a.sched.add_peer(*peer, None, now);
            }
        }
        (resumed, steps)
    }

    /// A provider does not have the blob.
    pub(crate) fn on_not_found(&mut self, peer: PeerId) -> Vec<Step> {
        if let Some(a) = self.active.as_mut() {
            a.sched.remove_peer(&peer);
        }
        let mut steps: Vec<Step> = self.close(&peer).into_iter().collect();
        steps.extend(self.forget_claim(&peer));
        steps
    }

    /// A provider whose answer was held is gone: if it was the one proving the size, ask the next.
    fn forget_claim(&mut self, peer: &PeerId) -> Option<Step> {
        self.claims.remove(peer);
        if self.probing == Some(*peer) {
            self.probing = None;
        }
        self.next_probe()
    }

    /// A piece verified and was written; `now` is when it arrived (what times the provider's window).
    /// Returns its bytes if it completed a piece we still needed.
    pub(crate) fn on_piece_ok(&mut self, peer: PeerId, piece: u32, bytes: u64, received: u64, now: Instant) -> u64 {
        self.tally.received += received;
        self.tally.peer(peer).received += received;
        let Some(a) = self.active.as_mut() else { return 0 };
        if !a.sched.on_piece_ok(&peer, piece, now) {
            return 0;
        }
        self.tally.peer(peer).bytes += bytes;
        self.rates.add(peer, bytes, now);
        self.last_useful = now;
        self.reopens.delivered(&peer);
        bytes
    }

    /// A piece failed (corrupt data, a refusal, a timeout).
    pub(crate) fn on_piece_failed(
        &mut self,
        peer: PeerId,
        piece: u32,
        failure: Failure,
        why: &str,
        received: u64,
        now: Instant,
    ) {
        self.tally.received += received;
        self.tally.peer(peer).received += received;
        tracing::warn!(%peer, piece, ?failure, %why, "piece failed");
        // A provider dropped already (a liar whose answer to an early `Get` was on its way) keeps its reason.
        if failure == Failure::Corrupt {
            self.dropped.entry(peer).or_insert_with(|| format!("sent data that failed verification ({why})"));
        }
        if let Some(a) = self.active.as_mut() {
            a.sched.on_piece_failed(&peer, piece, failure, now);
        }
    }

    /// A provider's session ended (it left, or its stream broke). One that had answered and was not dropped
    /// for its conduct is opened again later ([`Reopens`]).
    pub(crate) fn on_gone(&mut self, peer: PeerId, why: String, now: Instant) -> Option<Step> {
        if self.sessions.remove(&peer) {
            let eligible = self.answered.contains(&peer) && !self.dropped.contains_key(&peer);
            let gone = if eligible { self.reopens.broke(peer, why, now) } else { Err(why) };
            if let Err(why) = gone {
                tracing::info!(%peer, %why, "provider left the download");
                self.dropped.entry(peer).or_insert(why);
            }
        }
        if let Some(a) = self.active.as_mut() {
            a.sched.remove_peer(&peer);
        }
        self.forget_claim(&peer)
    }

    /// A request could not be handed to the provider's session (it ended without saying so).
    pub(crate) fn on_unreachable(&mut self, peer: &PeerId) {
        if let Some(a) = self.active.as_mut() {
            a.sched.remove_peer(peer);
        }
    }

    /// Everything due at `now`: requests, withdrawals, drops, a checkpoint if `checkpoint_idle` (the last
    /// one finished), re-asking partial providers, progress. `Ok(true)` with the steps once every piece is
    /// verified; an error when the download cannot go on.
    pub(crate) fn poll(&mut self, now: Instant, checkpoint_idle: bool) -> Result<(Vec<Step>, bool), NodeError> {
        let mut steps = self.due_reopens(now);
        // Nobody answered (the download may have begun on the request's word alone): it fails the same way
        // whether or not it has begun.
        let nobody = self.answered.is_empty() || self.active.is_none();
        if nobody
            && ((self.sessions.is_empty() && !self.reopens.pending() && !self.discover)
                || now.duration_since(self.last_useful) > self.tuning.stall_timeout)
        {
            return Err(NodeError::NoProviders { id: self.id, secs: now.duration_since(self.last_useful).as_secs() });
        }
        let Some(a) = self.active.as_mut() else { return Ok((steps, false)) };
        // Let every provider that is about to answer and is not in yet join before work is handed out.
        let gathering = self.first_answer.is_some_and(|t| now.duration_since(t) < self.tuning.gather)
            && self.sessions.iter().any(|p| !self.answered.contains(p) && a.sched.window(p).is_none());
        if !gathering {
            for action in a.sched.poll(now) {
                match action {
                    Action::Request { peer, piece } => {
                        if self.sessions.contains(&peer) {
                            steps.push(Step::Get { peer, piece, span: a.layout.piece_chunks(piece) });
                        } else {
                            a.sched.remove_peer(&peer);
                        }
                    }
                    // Told to the provider, so that one behind an upload cap does not spend it on a piece
                    // we have.
                    Action::Cancel { peer, piece } if self.sessions.contains(&peer) => {
                        steps.push(Step::Cancel { peer, span: a.layout.piece_chunks(piece) });
                    }
                    Action::Cancel { .. } => {}
                    Action::DropPeer { peer, reason } => {
                        let why = match reason {
                            DropReason::Corrupt => "sent data that failed verification",
                            DropReason::Slow => "too slow",
                            DropReason::Unreliable => "too many failed requests",
                        };
                        tracing::warn!(%peer, %why, "dropping provider from this download");
                        self.dropped.entry(peer).or_insert_with(|| why.to_string());
                        if self.sessions.remove(&peer) {
                            steps.push(Step::Close(peer));
                        }
                    }
                }
            }
        }
        let finished = a.sched.is_finished();
        if finished || now.duration_since(self.published) >= PUBLISH_EVERY {
            self.published = now;
            if tracing::enabled!(tracing::Level::DEBUG) {
                for p in &self.sessions {
                    if let Some(w) = a.sched.window(p) {
                        tracing::debug!(
                            peer = %p,
                            in_flight = a.sched.in_flight(p),
                            received_kib = self.tally.received >> 10,
                            window_kib = w.limit() >> 10,
                            rate_mb_s = w.rate() / 1e6,
                            fastest_ms = w.fastest().map_or(0.0, |d| d.as_secs_f64() * 1e3),
                            full = w.is_full(),
                            "provider window"
                        );
                    }
                }
            }
            steps.push(Step::Publish { peers: a.sched.peer_count(), per_peer: self.rates.snapshot(now) });
        }
        if finished {
            return Ok((steps, true));
        }
        if checkpoint_idle && now.duration_since(self.last_checkpoint) >= self.tuning.checkpoint_every {
            self.last_checkpoint = now;
            steps.push(Step::Checkpoint);
        }
        if now.duration_since(self.last_have) > HAVE_EVERY {
            self.last_have = now;
            steps.extend(self.partial_peers.iter().filter(|p| self.sessions.contains(p)).map(|p| Step::AskHave(*p)));
        }
        // No verified piece for a whole `stall_timeout`: whoever is left cannot or will not deliver.
        if now.duration_since(self.last_useful) > self.tuning.stall_timeout {
            let why = if self.dropped.is_empty() && self.reopens.left().next().is_none() {
                format!(
                    "no piece arrived for {} s from {} provider(s)",
                    self.tuning.stall_timeout.as_secs(),
                    a.sched.peer_count()
                )
            } else {
                self.dropped
                    .iter()
                    .chain(self.reopens.left())
                    .map(|(p, w)| format!("{p}: {w}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            return Err(NodeError::Stalled { id: self.id, why });
        }
        Ok((steps, false))
    }

    /// Sessions to open again now (see [`Fetch::on_gone`]).
    fn due_reopens(&mut self, now: Instant) -> Vec<Step> {
        let due = self.reopens.due(now);
        self.sessions.extend(&due);
        due.into_iter()
            .map(|peer| Step::Open { peer, addrs: self.hints.get(&peer).cloned().unwrap_or_default() })
            .collect()
    }

    /// The download ended with every piece verified: what the report needs. `Err` if the providers
    /// claimed an empty blob that the id says is not.
    pub(crate) fn finish(&mut self) -> Result<Done, NodeError> {
        let Some(a) = self.active.as_ref() else {
            return Err(NodeError::NoProviders { id: self.id, secs: self.tuning.stall_timeout.as_secs() });
        };
        // A provider that left and was not back by the end is reported with why it left.
        for (p, why) in self.reopens.take_left().into_iter().chain(self.dropped.drain()) {
            self.tally.peer(p).dropped = Some(why);
        }
        // Providers still in: those that answered first, then those not heard from yet (a small blob begun
        // on the request's word can be done before they answer; a folder's files ask them too).
        let (mut working, waiting): (Vec<_>, Vec<_>) = self
            .sessions
            .iter()
            .map(|p| (*p, self.hints.get(p).cloned().unwrap_or_default()))
            .partition(|(p, _)| self.answered.contains(p));
        working.extend(waiting);
        // Timed from the first answer (or the begin, if later): a download begun before any answer would
        // otherwise count the connection's set-up as transfer.
        let from = self.first_answer.map_or(a.started, |t| t.max(a.started));
        Ok(Done {
            size: a.layout.size(),
            collection: a.collection,
            transfer_secs: from.elapsed().as_secs_f64(),
            working,
        })
    }
}

mod output;
mod reopen;
#[cfg(test)]
mod tests;
