//! The download scheduler: which peer fetches which piece, and when to give up on a peer.
//!
//! The principal type is [`Scheduler`]. The driver (the node's downloader, or a simulator) tells it what
//! happened (`add_peer`, `on_piece_ok`, `on_piece_failed`, `remove_peer`) and calls [`Scheduler::poll`] with
//! the current time to learn what to do next ([`Action`]s). It never does I/O and never reads a clock.
//!
//! Policy, in the order it is applied by `poll`:
//! 1. A request outstanding longer than `slow_after` marks its peer *slow* for that piece (a strike); the
//!    piece becomes free for other peers while the slow request stays outstanding. `max_strikes` strikes
//!    drop the peer.
//! 2. Free slots are filled round-robin over peers, one piece per peer per round, so that every provider
//!    gets work even when one answered first. Each peer has a *depth*, the requests it may have
//!    outstanding: its [`Window`] (bytes: the delivery rate measured times the round trip, grown while
//!    answers come without a queue, halved when they queue; see `window.rs`) over the piece size, at least
//!    1 and at most `max_in_flight`. A new peer starts at one piece (`initial_window`). A fast peer behind a long
//!    link ends with the link's bandwidth-delay product in flight (30 MB at 100 MB/s and 300 ms); a peer
//!    whose uplink is busy with others (a seed asked by a hundred peers) keeps about one request of ours:
//!    a request that waits there for seconds holds a piece chosen on stale information, and such queues
//!    made the simulated swarm send the seed's pieces a second time.
//! 3. A peer gets the rarest piece it has that nobody is fetching (ties: the first from a per-download
//!    starting point, [`Config::with_tie_break`], so that many peers fetching a new file at once from one
//!    seed ask it for different pieces instead of all for piece 0).
//! 4. End game: when every missing piece is requested, a peer with a spare slot re-requests a piece outstanding elsewhere
//!    (at most `endgame_copies` copies) if its copy is expected to arrive sooner, the piece expected last
//!    first (`scheduler/endgame.rs`); the first to arrive wins and the others are cancelled.
//! 5. Data that fails verification bans its peer from this download immediately.
//!
//! Invariants are listed in `STATE.md` beside this file and checked by the property tests below.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::Bitfield;
use super::window::{Sent, Window, WindowConfig};
use endgame::Expected;

mod endgame;

/// Tunables of the scheduler.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Most requests kept outstanding per peer (the largest depth), whatever its window says.
    pub max_in_flight: usize,
    /// Bounds of each peer's window: most bytes outstanding, queueing tolerated.
    pub window: WindowConfig,
    /// Bytes each peer's window starts at; at least one piece (the default, 0, is one piece).
    pub initial_window: u64,
    /// Bytes in a piece (the driver's layout), to turn a window into a number of requests.
    pub piece_bytes: u64,
    /// A request outstanding this long counts as slow.
    pub slow_after: Duration,
    /// Strikes (slow requests, transient failures) after which a peer is dropped.
    pub max_strikes: u32,
    /// Copies of one piece requested at once in the end game.
    pub endgame_copies: usize,
    /// Where the scan for the rarest piece starts (modulo the piece count).
    pub tie_break: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_in_flight: 1024,
            window: WindowConfig::default(),
            initial_window: 0,
            piece_bytes: 256 << 10,
            slow_after: Duration::from_secs(10),
            max_strikes: 3,
            endgame_copies: 2,
            tie_break: 0,
        }
    }
}

impl Config {
    /// Sets the largest pipelining depth (at least 1).
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Sets the queueing at a peer that is tolerated before its window shrinks (see `window.rs`).
    pub fn with_queue_slack(mut self, d: Duration) -> Self {
        self.window.queue_slack = d;
        self
    }

    /// Sets the piece size of the download (the driver's layout), in bytes.
    pub fn with_piece_bytes(mut self, bytes: u64) -> Self {
        self.piece_bytes = bytes.max(1);
        self
    }

    /// Sets the bytes each peer's window starts at and the most it may grow to.
    pub fn with_window(mut self, initial: u64, max: u64) -> Self {
        self.initial_window = initial;
        self.window.max_bytes = max;
        self
    }

    /// Sets how long a request may be outstanding before it counts as slow.
    pub fn with_slow_after(mut self, d: Duration) -> Self {
        self.slow_after = d;
        self
    }

    /// Sets where ties between equally rare pieces are broken: give each download a random value.
    pub fn with_tie_break(mut self, start: u64) -> Self {
        self.tie_break = start;
        self
    }

    /// Sets the number of strikes that drop a peer (at least 1).
    pub fn with_max_strikes(mut self, n: u32) -> Self {
        self.max_strikes = n.max(1);
        self
    }
}

/// How a request failed, as seen by the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The data did not verify against the blob id.
    Corrupt,
    /// The peer says it does not have the piece (after all).
    Missing,
    /// Anything else that might go away (a refused request, a local write hiccup).
    Transient,
}

/// Why the scheduler dropped a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// It sent data that failed verification. It is banned from this download.
    Corrupt,
    /// Too many requests were slow.
    Slow,
    /// Too many transient failures.
    Unreliable,
}

/// What the driver should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<P> {
    /// Ask `peer` for `piece`.
    Request {
        /// The peer.
        peer: P,
        /// Piece index.
        piece: u32,
    },
    /// The piece arrived from elsewhere; `peer`'s answer can be discarded (or the request not sent).
    Cancel {
        /// The peer.
        peer: P,
        /// Piece index.
        piece: u32,
    },
    /// Stop using `peer` for this download.
    DropPeer {
        /// The peer.
        peer: P,
        /// Why.
        reason: DropReason,
    },
}

#[derive(Debug)]
struct Req {
    piece: u32,
    sent: Sent,
    slow: bool,
}

#[derive(Debug)]
struct Peer {
    /// `None`: the peer has every piece.
    have: Option<Bitfield>,
    reqs: Vec<Req>,
    strikes: u32,
    /// The bytes this peer may have outstanding (see the module docs).
    window: Window,
}

impl Peer {
    #[cfg(test)]
    fn has(&self, piece: u32) -> bool {
        self.have.as_ref().is_none_or(|h| h.get(piece))
    }

    /// Requests this peer may have outstanding: its window over the piece size, within `1..=max_in_flight`.
    fn depth(&self, config: &Config) -> usize {
        let n = self.window.limit() / config.piece_bytes.max(1);
        (n as usize).clamp(1, config.max_in_flight.max(1))
    }
}

/// The piece picker for one download. `P` identifies a peer.
#[derive(Debug)]
pub struct Scheduler<P> {
    config: Config,
    done: Bitfield,
    /// Outstanding requests per piece.
    requested: Vec<u8>,
    /// Outstanding requests per piece that are not (yet) slow.
    fast: Vec<u8>,
    /// Per piece, how many partial peers have it; complete peers are counted in `full_peers`.
    partial_avail: Vec<u16>,
    full_peers: u32,
    peers: BTreeMap<P, Peer>,
    banned: BTreeSet<P>,
    queued: Vec<Action<P>>,
    round: usize,
}

impl<P: Clone + Ord> Scheduler<P> {
    /// A scheduler for `piece_count` pieces, of which `already_have` are verified (a resumed download).
    pub fn new(config: Config, piece_count: u32, already_have: impl IntoIterator<Item = u32>) -> Self {
        let mut done = Bitfield::new(piece_count);
        for p in already_have {
            done.set(p);
        }
        let n = piece_count as usize;
        Self {
            config,
            done,
            requested: vec![0; n],
            fast: vec![0; n],
            partial_avail: vec![0; n],
            full_peers: 0,
            peers: BTreeMap::new(),
            banned: BTreeSet::new(),
            queued: Vec::new(),
            round: 0,
        }
    }

    /// Adds a provider, or updates what it has. `have: None` means it has every piece.
    /// Returns false (and ignores it) if the peer is banned from this download.
    pub fn add_peer(&mut self, peer: P, have: Option<Bitfield>, _now: Instant) -> bool {
        if self.banned.contains(&peer) {
            return false;
        }
        if let Some(have) = &have
            && have.len() != self.done.len()
        {
            return false;
        }
        if let Some(existing) = self.peers.get_mut(&peer) {
            let old = existing.have.take();
            Self::count(&mut self.partial_avail, &mut self.full_peers, old.as_ref(), -1);
            Self::count(&mut self.partial_avail, &mut self.full_peers, have.as_ref(), 1);
            existing.have = have;
            return true;
        }
        Self::count(&mut self.partial_avail, &mut self.full_peers, have.as_ref(), 1);
        let window = Window::new(self.config.initial_window.max(self.config.piece_bytes));
        self.peers.insert(peer, Peer { have, reqs: Vec::new(), strikes: 0, window });
        true
    }

    /// A known provider now has one more piece (BitTorrent's HAVE): the same as [`Scheduler::add_peer`]
    /// with its old pieces and this one, without going over all pieces. Returns false if the peer is
    /// unknown, already complete, or already had it.
    pub fn peer_has(&mut self, peer: &P, piece: u32) -> bool {
        let Some(p) = self.peers.get_mut(peer) else { return false };
        let Some(have) = p.have.as_mut() else { return false };
        if piece >= have.len() || !have.set(piece) {
            return false;
        }
        let a = &mut self.partial_avail[piece as usize];
        *a = a.saturating_add(1);
        true
    }

    fn count(avail: &mut [u16], full: &mut u32, have: Option<&Bitfield>, delta: i32) {
        match have {
            None => *full = full.saturating_add_signed(delta),
            Some(h) => {
                for i in h.iter() {
                    let a = &mut avail[i as usize];
                    *a = if delta > 0 { a.saturating_add(1) } else { a.saturating_sub(1) };
                }
            }
        }
    }

    /// Removes a peer (disconnected, or the driver gave up on it). Its outstanding pieces become free.
    pub fn remove_peer(&mut self, peer: &P) {
        if let Some(p) = self.peers.remove(peer) {
            for r in &p.reqs {
                self.release(r);
            }
            Self::count(&mut self.partial_avail, &mut self.full_peers, p.have.as_ref(), -1);
        }
    }

    fn release(&mut self, r: &Req) {
        let i = r.piece as usize;
        self.requested[i] = self.requested[i].saturating_sub(1);
        if !r.slow {
            self.fast[i] = self.fast[i].saturating_sub(1);
        }
    }

    fn take_req(&mut self, peer: &P, piece: u32) -> Option<Req> {
        let p = self.peers.get_mut(peer)?;
        let pos = p.reqs.iter().position(|r| r.piece == piece)?;
        let r = p.reqs.swap_remove(pos);
        self.release(&r);
        Some(r)
    }

    /// `peer` delivered `piece` and it verified. Returns true if this completed the piece (false for a
    /// duplicate, e.g. an end-game copy that lost the race).
    pub fn on_piece_ok(&mut self, peer: &P, piece: u32, now: Instant) -> bool {
        let req = self.take_req(peer, piece);
        if let Some(r) = &req
            && let Some(p) = self.peers.get_mut(peer)
        {
            p.strikes = p.strikes.saturating_sub(1);
            p.window.on_answer(r.sent, self.config.piece_bytes, now, &self.config.window);
        }
        if !self.done.set(piece) {
            return false;
        }
        let others: Vec<P> = self
            .peers
            .iter()
            .filter(|(_, p)| p.reqs.iter().any(|r| r.piece == piece))
            .map(|(k, _)| k.clone())
            .collect();
        for other in others {
            self.take_req(&other, piece);
            self.queued.push(Action::Cancel { peer: other, piece });
        }
        true
    }

    /// `peer` failed to deliver `piece`.
    pub fn on_piece_failed(&mut self, peer: &P, piece: u32, failure: Failure, _now: Instant) {
        if self.take_req(peer, piece).is_none() && !self.peers.contains_key(peer) {
            return;
        }
        match failure {
            Failure::Corrupt => {
                self.banned.insert(peer.clone());
                self.drop_peer(peer, DropReason::Corrupt);
            }
            Failure::Missing => {
                let n = self.done.len();
                let Some(p) = self.peers.get_mut(peer) else {
                    return;
                };
                match p.have.as_mut() {
                    None => {
                        // A complete peer lacks a piece after all: count it as a partial peer from now on.
                        let mut have = Bitfield::full(n);
                        have.clear(piece);
                        p.have = Some(have);
                        self.full_peers = self.full_peers.saturating_sub(1);
                        for i in (0..n).filter(|&i| i != piece) {
                            let a = &mut self.partial_avail[i as usize];
                            *a = a.saturating_add(1);
                        }
                    }
                    Some(have) => {
                        if have.clear(piece) {
                            let a = &mut self.partial_avail[piece as usize];
                            *a = a.saturating_sub(1);
                        }
                    }
                }
            }
            Failure::Transient => self.strike(peer, DropReason::Unreliable),
        }
    }

    fn strike(&mut self, peer: &P, reason: DropReason) {
        let max = self.config.max_strikes;
        let out = self.peers.get_mut(peer).is_some_and(|p| {
            p.strikes += 1;
            p.strikes >= max
        });
        if out {
            self.drop_peer(peer, reason);
        }
    }

    fn drop_peer(&mut self, peer: &P, reason: DropReason) {
        if self.peers.contains_key(peer) {
            self.remove_peer(peer);
            self.queued.push(Action::DropPeer { peer: peer.clone(), reason });
        }
    }

    /// Decides what to do now.
    pub fn poll(&mut self, now: Instant) -> Vec<Action<P>> {
        // 1. Slow requests.
        let mut struck = Vec::new();
        for (id, p) in self.peers.iter_mut() {
            for r in p.reqs.iter_mut().filter(|r| !r.slow) {
                if now.saturating_duration_since(r.sent.at) >= self.config.slow_after {
                    r.slow = true;
                    let i = r.piece as usize;
                    self.fast[i] = self.fast[i].saturating_sub(1);
                    struck.push(id.clone());
                }
            }
        }
        for id in struck {
            self.strike(&id, DropReason::Slow);
        }
        // 2.-4. Fill free slots round-robin.
        let mut out = std::mem::take(&mut self.queued);
        if self.is_finished() || self.peers.is_empty() {
            return out;
        }
        let keys: Vec<P> = self.peers.keys().cloned().collect();
        let start = self.round % keys.len();
        self.round = self.round.wrapping_add(1);
        // In the end game: when each piece's answer is expected (computed once, kept up to date with copies).
        let mut expected: Option<Vec<Expected>> = None;
        loop {
            let mut assigned = false;
            if expected.is_none() && !self.any_free_piece() {
                let n = self.done.len() as usize;
                expected = Some(endgame::expected(self.peers.values(), n, self.config.piece_bytes, now));
            }
            for k in keys[start..].iter().chain(&keys[..start]) {
                let Some(p) = self.peers.get(k) else { continue };
                if p.reqs.len() >= p.depth(&self.config) {
                    continue;
                }
                let Some(piece) = self.pick(p, expected.as_deref(), now) else {
                    continue;
                };
                if let Some(e) = expected.as_mut().and_then(|e| e.get_mut(piece as usize)) {
                    let copy = endgame::copy_eta(p, self.config.piece_bytes, now);
                    *e = e.earliest(copy.map_or(Expected::Unknown, Expected::At));
                }
                self.requested[piece as usize] += 1;
                self.fast[piece as usize] += 1;
                if let Some(p) = self.peers.get_mut(k) {
                    let sent = p.window.on_send(now);
                    p.reqs.push(Req { piece, sent, slow: false });
                }
                out.push(Action::Request { peer: k.clone(), piece });
                assigned = true;
            }
            if !assigned {
                break;
            }
        }
        out
    }

    /// A missing piece without a (non-slow) request. Whether anyone has it does not matter: in a swarm,
    /// pieces nobody we know has yet are the normal case, and treating that as the end game sent duplicate
    /// requests to the seed all through the download (seen in the simulator: 1.3 copies of the file from
    /// the seed for 10 peers, where one copy is the ideal).
    fn any_free_piece(&self) -> bool {
        self.done.missing(None, 0).any(|i| self.fast[i as usize] == 0)
    }

    fn available(&self, piece: u32) -> bool {
        self.full_peers > 0 || self.partial_avail[piece as usize] > 0
    }

    /// The piece `p` should fetch next: the rarest free one, or in the end game (`expected` is the
    /// pieces' expected arrivals) the copy that gains the most.
    fn pick(&self, p: &Peer, expected: Option<&[Expected]>, now: Instant) -> Option<u32> {
        if let Some(expected) = expected {
            return self.pick_copy(p, expected, now);
        }
        let mut best: Option<(u32, u32)> = None; // (availability, piece)
        let n = self.done.len();
        let start = if n == 0 { 0 } else { (self.config.tie_break % u64::from(n)) as u32 };
        // Missing pieces this peer has, from the tie-break point on.
        for i in self.done.missing(p.have.as_ref(), start) {
            let idx = i as usize;
            // `requested` first: a piece nobody asked for cannot be among this peer's requests, and the
            // scan of those (up to 64) for each of a thousand pieces was most of the cost of a poll.
            if self.requested[idx] > 0 && p.reqs.iter().any(|r| r.piece == i) {
                continue;
            }
            // A complete peer (a seed) is not asked for what a partial peer has: its upload is the swarm's
            // scarcest, best spent on pieces nobody else has. Unless a request for the piece went slow (the
            // partial peer may be silent). (End-game copies are `pick_copy`'s.)
            let slow_request = self.requested[idx] > self.fast[idx];
            if p.have.is_none() && self.partial_avail[idx] > 0 && !slow_request {
                continue;
            }
            if self.fast[idx] > 0 {
                continue;
            }
            let avail = self.full_peers + self.partial_avail[idx] as u32;
            if best.is_none_or(|(a, _)| avail < a) {
                best = Some((avail, i));
            }
        }
        best.map(|(_, i)| i)
    }

    /// The end game's pick for `p`: of the pieces it has and is not fetching, with fewer than
    /// `endgame_copies` requests, the one its copy would bring soonest before the original (see
    /// `scheduler/endgame.rs`); none if no copy would come sooner.
    fn pick_copy(&self, p: &Peer, expected: &[Expected], now: Instant) -> Option<u32> {
        let copy = endgame::copy_eta(p, self.config.piece_bytes, now);
        let margin = endgame::piece_time(&p.window, self.config.piece_bytes);
        let mut best: Option<(Duration, u32)> = None;
        for i in self.done.missing(p.have.as_ref(), 0) {
            let idx = i as usize;
            if (self.requested[idx] as usize) >= self.config.endgame_copies
                || (self.requested[idx] > 0 && p.reqs.iter().any(|r| r.piece == i))
            {
                continue;
            }
            let original = expected.get(idx).copied().unwrap_or(Expected::NotAsked);
            let Some(gain) = endgame::gain(copy, margin, original) else { continue };
            if best.is_none_or(|(g, _)| gain > g) {
                best = Some((gain, i));
            }
        }
        best.map(|(_, i)| i)
    }

    /// True when every piece is verified.
    pub fn is_finished(&self) -> bool {
        self.done.is_full()
    }

    /// Pieces verified so far.
    pub fn done(&self) -> &Bitfield {
        &self.done
    }

    /// True when `piece` is verified.
    pub fn is_done(&self, piece: u32) -> bool {
        self.done.get(piece)
    }

    /// True when pieces are missing that no current peer has: the driver should look for more providers.
    pub fn needs_providers(&self) -> bool {
        !self.is_finished() && (0..self.done.len()).any(|i| !self.done.get(i) && !self.available(i))
    }

    /// Peers currently in the download.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Whether `peer` was banned for sending corrupt data.
    pub fn is_banned(&self, peer: &P) -> bool {
        self.banned.contains(peer)
    }

    /// Requests outstanding at `peer`.
    pub fn in_flight(&self, peer: &P) -> usize {
        self.peers.get(peer).map_or(0, |p| p.reqs.len())
    }

    /// Requests `peer` may have outstanding now (its depth; see the module docs).
    pub fn depth(&self, peer: &P) -> usize {
        self.peers.get(peer).map_or(0, |p| p.depth(&self.config))
    }

    /// `peer`'s window: the bytes it may have outstanding, its peak delivery rate and fastest answer.
    pub fn window(&self, peer: &P) -> Option<&Window> {
        self.peers.get(peer).map(|p| &p.window)
    }
}

#[cfg(test)]
mod tests;
