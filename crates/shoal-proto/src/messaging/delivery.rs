//! Getting a direct letter to its recipient, online or not: the sender's [`Outbox`], a holder's
//! [`Holding`] and the recipient's [`Inbox`].
//!
//! - [`Outbox`] (sender): tries the recipient directly; if no receipt comes within
//!   [`DeliveryConfig::direct_timeout`], places copies with [`DeliveryConfig::holders`] holders (which peers
//!   is the topology's choice, made by the driver: the recipient's DHT neighbours, its supernodes, the index
//!   server, our neighbours); keeps trying directly every [`DeliveryConfig::retry_every`] until a receipt
//!   (delivered) or [`DeliveryConfig::keep_for`] (expired), and at once when the recipient connects
//!   ([`Outbox::on_reachable`]). Each change is an [`Action::Status`]: sent, held by N, delivered.
//! - [`Holding`] (holder): keeps sealed letters for recipients, bounded per sender (so one sender cannot
//!   fill it), per recipient (so one popular or absent recipient cannot) and in all, for
//!   [`HoldingConfig::keep_for`]; hands them to their recipient when it asks and deletes each on the
//!   recipient's signed [`Receipt`] only. It never needs to read a letter.
//! - [`Inbox`] (recipient): the letter ids seen in the last [`DeliveryConfig::keep_for`], so the copies
//!   that several holders and the sender hand over are shown once.
//!
//! Generic over the driver's peer type `P`, like the transfer scheduler, so the simulator drives the same
//! code with plain numbers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use super::direct::{Receipt, Sealed};
use super::post::{AuthorKey, MsgId};

/// Timings and limits of the sender's side.
#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    /// Copies placed with holders when the recipient does not answer. Eight, not the 3-5 of the design
    /// notes: a letter is lost when every holder is away for good or for longer than the recipient waits.
    /// Under churn of 2 min sessions (`letters-churn-2min.toml`) a recipient's letters were spread over
    /// about nine peers, two of them senders that left for good and four away at the end, and with 5
    /// copies each, 1 to 3% of the letters had none of their holders back in a run (3 runs of 5).
    pub holders: usize,
    /// How long a direct attempt may go unanswered before copies are placed (and between placements).
    pub direct_timeout: Duration,
    /// How often the recipient is tried directly while the letter is not delivered.
    pub retry_every: Duration,
    /// A letter not delivered after this long is given up; holders forget it by then too.
    pub keep_for: Duration,
    /// Letters not yet delivered, at most.
    pub max_outstanding: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            holders: 8,
            direct_timeout: Duration::from_secs(5),
            retry_every: Duration::from_secs(60),
            keep_for: Duration::from_secs(7 * 24 * 3600),
            max_outstanding: 10_000,
        }
    }
}

/// Where a letter is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Status {
    /// Sent; no holder and no receipt yet.
    Sent,
    /// Held by this many peers for the recipient.
    Held {
        /// Holders that took a copy.
        by: usize,
    },
    /// The recipient's receipt came.
    Delivered,
    /// Not delivered within [`DeliveryConfig::keep_for`].
    Expired,
}

/// What the driver should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<P> {
    /// Hand the letter to its recipient, if it can be reached.
    Direct {
        /// The letter.
        id: MsgId,
        /// Its recipient.
        to: AuthorKey,
    },
    /// Place copies with `more` holders other than `besides` (the topology's choice).
    Place {
        /// The letter.
        id: MsgId,
        /// Its recipient.
        to: AuthorKey,
        /// How many more holders are wanted.
        more: usize,
        /// Holders that have a copy already.
        besides: Vec<P>,
    },
    /// The letter's status changed.
    Status {
        /// The letter.
        id: MsgId,
        /// Its new status.
        status: Status,
    },
}

/// Why the outbox refused a letter.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// Too many letters are not delivered yet.
    #[error("{0} letters wait for delivery already; wait for some to be delivered or to expire")]
    Full(usize),
}

#[derive(Clone, Debug)]
struct Out<P> {
    to: AuthorKey,
    since: Instant,
    last_direct: Option<Instant>,
    last_place: Option<Instant>,
    holders: Vec<P>,
}

/// The sender's letters not yet delivered. See the module docs.
#[derive(Clone, Debug)]
pub struct Outbox<P> {
    config: DeliveryConfig,
    letters: HashMap<MsgId, Out<P>>,
}

impl<P: Clone + Eq + Hash> Outbox<P> {
    /// An empty outbox.
    pub fn new(config: DeliveryConfig) -> Self {
        Self { config, letters: HashMap::new() }
    }

    /// A new letter (its [`Sealed::id`]) for `to`. Sending the same id again is a no-op.
    pub fn send(&mut self, id: MsgId, to: AuthorKey, now: Instant) -> Result<(), OutboxError> {
        if self.letters.contains_key(&id) {
            return Ok(());
        }
        if self.letters.len() >= self.config.max_outstanding {
            return Err(OutboxError::Full(self.letters.len()));
        }
        self.letters.insert(id, Out { to, since: now, last_direct: None, last_place: None, holders: Vec::new() });
        Ok(())
    }

    /// The recipient's receipt for `id` (checked by the driver with [`Receipt::is_from`]).
    pub fn on_receipt(&mut self, id: &MsgId) -> Option<Action<P>> {
        self.letters.remove(id).map(|_| Action::Status { id: *id, status: Status::Delivered })
    }

    /// `holder` took a copy of `id`.
    pub fn on_held(&mut self, id: &MsgId, holder: P) -> Option<Action<P>> {
        let out = self.letters.get_mut(id)?;
        if out.holders.contains(&holder) {
            return None;
        }
        out.holders.push(holder);
        Some(Action::Status { id: *id, status: Status::Held { by: out.holders.len() } })
    }

    /// `to` connected: the letters for it whose last direct attempt is at least
    /// [`DeliveryConfig::direct_timeout`] old are tried directly now, instead of at the next
    /// [`DeliveryConfig::retry_every`] (a connection that comes and goes does not make a storm).
    pub fn on_reachable(&mut self, to: &AuthorKey, now: Instant) -> Vec<Action<P>> {
        let gap = self.config.direct_timeout;
        let mut actions = Vec::new();
        for (id, out) in &mut self.letters {
            if out.to == *to && out.last_direct.is_none_or(|t| now.saturating_duration_since(t) >= gap) {
                out.last_direct = Some(now);
                actions.push(Action::Direct { id: *id, to: out.to });
            }
        }
        actions
    }

    /// Where `id` is, if it is still on its way (delivered and expired letters are forgotten; their last
    /// [`Action::Status`] said so).
    pub fn status(&self, id: &MsgId) -> Option<Status> {
        self.letters
            .get(id)
            .map(|o| if o.holders.is_empty() { Status::Sent } else { Status::Held { by: o.holders.len() } })
    }

    /// Letters on their way.
    pub fn len(&self) -> usize {
        self.letters.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.letters.is_empty()
    }

    /// What to do now.
    pub fn poll(&mut self, now: Instant) -> Vec<Action<P>> {
        let c = &self.config;
        let mut actions = Vec::new();
        let mut expired = Vec::new();
        for (id, out) in &mut self.letters {
            let age = now.saturating_duration_since(out.since);
            if age >= c.keep_for {
                expired.push(*id);
                continue;
            }
            if out.last_direct.is_none_or(|t| now.saturating_duration_since(t) >= c.retry_every) {
                out.last_direct = Some(now);
                actions.push(Action::Direct { id: *id, to: out.to });
            }
            let placing_due = out.last_place.is_none_or(|t| now.saturating_duration_since(t) >= c.direct_timeout);
            if age >= c.direct_timeout && out.holders.len() < c.holders && placing_due {
                out.last_place = Some(now);
                actions.push(Action::Place {
                    id: *id,
                    to: out.to,
                    more: c.holders - out.holders.len(),
                    besides: out.holders.clone(),
                });
            }
        }
        for id in expired {
            self.letters.remove(&id);
            actions.push(Action::Status { id, status: Status::Expired });
        }
        actions
    }
}

/// Limits of what a holder keeps for others.
#[derive(Clone, Debug)]
pub struct HoldingConfig {
    /// A letter is forgotten after this long.
    pub keep_for: Duration,
    /// Letters one sender may leave, over all recipients.
    pub max_per_sender: usize,
    /// Letters kept for one recipient.
    pub max_per_recipient: usize,
    /// Bytes kept for one recipient.
    pub max_bytes_per_recipient: u64,
    /// Bytes kept in all.
    pub max_bytes: u64,
}

impl Default for HoldingConfig {
    fn default() -> Self {
        Self {
            keep_for: Duration::from_secs(7 * 24 * 3600),
            max_per_sender: 200,
            max_per_recipient: 1000,
            max_bytes_per_recipient: 16 << 20,
            max_bytes: 256 << 20,
        }
    }
}

/// Why a holder refused a letter.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HoldRefusal {
    /// The sender has left as many as it may.
    #[error("this sender has {0} letters held here already")]
    SenderFull(usize),
    /// The recipient has as many waiting as it may.
    #[error("the recipient has {letters} letters ({bytes} bytes) waiting here already")]
    RecipientFull {
        /// Letters waiting.
        letters: usize,
        /// Their bytes.
        bytes: u64,
    },
    /// The holder is full.
    #[error("this holder keeps {0} bytes for others already")]
    Full(u64),
}

#[derive(Clone, Debug)]
struct Held {
    sealed: Sealed,
    bytes: u64,
    since: Instant,
}

/// What a holder keeps for others. See the module docs.
#[derive(Clone, Debug, Default)]
pub struct Holding {
    config: HoldingConfig,
    letters: HashMap<MsgId, Held>,
    for_recipient: HashMap<AuthorKey, (usize, u64)>,
    from_sender: HashMap<AuthorKey, usize>,
    bytes: u64,
    by_age: VecDeque<(Instant, MsgId)>,
}

impl Holding {
    /// An empty holding.
    pub fn new(config: HoldingConfig) -> Self {
        Self { config, ..Self::default() }
    }

    /// Offers `sealed` (of [`Sealed::id`] `id`) to keep for its recipient. A letter held already is
    /// accepted again (the sender's retry). `now` never goes back between calls (expiry walks the letters
    /// in the order they came).
    pub fn offer(&mut self, id: MsgId, sealed: Sealed, now: Instant) -> Result<(), HoldRefusal> {
        if self.letters.contains_key(&id) {
            return Ok(());
        }
        let bytes = sealed.ciphertext.len() as u64 + 128;
        let sent = self.from_sender.get(&sealed.from).copied().unwrap_or(0);
        if sent >= self.config.max_per_sender {
            return Err(HoldRefusal::SenderFull(sent));
        }
        let (letters, held) = self.for_recipient.get(&sealed.to).copied().unwrap_or((0, 0));
        if letters >= self.config.max_per_recipient || held + bytes > self.config.max_bytes_per_recipient {
            return Err(HoldRefusal::RecipientFull { letters, bytes: held });
        }
        if self.bytes + bytes > self.config.max_bytes {
            return Err(HoldRefusal::Full(self.bytes));
        }
        *self.from_sender.entry(sealed.from).or_default() += 1;
        let r = self.for_recipient.entry(sealed.to).or_default();
        r.0 += 1;
        r.1 += bytes;
        self.bytes += bytes;
        self.by_age.push_back((now, id));
        self.letters.insert(id, Held { sealed, bytes, since: now });
        Ok(())
    }

    /// The recipients something is kept for.
    pub fn recipients(&self) -> impl Iterator<Item = &AuthorKey> {
        self.for_recipient.keys()
    }

    /// What is kept for `recipient`, oldest first (the driver hands these over when it shows up).
    pub fn for_recipient(&self, recipient: &AuthorKey) -> Vec<(MsgId, &Sealed)> {
        let mut out: Vec<(Instant, MsgId, &Sealed)> = self
            .letters
            .iter()
            .filter(|(_, h)| &h.sealed.to == recipient)
            .map(|(id, h)| (h.since, *id, &h.sealed))
            .collect();
        out.sort_by_key(|(since, id, _)| (*since, *id));
        out.into_iter().map(|(_, id, s)| (id, s)).collect()
    }

    /// The recipient's receipt: deletes the letter if the receipt is its recipient's. Whether it did.
    pub fn on_receipt(&mut self, receipt: &Receipt) -> bool {
        let Some(h) = self.letters.get(&receipt.sealed) else { return false };
        if !receipt.is_from(&h.sealed.to) {
            return false;
        }
        self.remove(&receipt.sealed);
        true
    }

    /// Forgets letters older than [`HoldingConfig::keep_for`]; returns their ids.
    pub fn expire(&mut self, now: Instant) -> Vec<MsgId> {
        let mut gone = Vec::new();
        while let Some(&(since, id)) = self.by_age.front() {
            if now.saturating_duration_since(since) < self.config.keep_for {
                break;
            }
            self.by_age.pop_front();
            if self.letters.get(&id).is_some_and(|h| h.since == since) && self.remove(&id) {
                gone.push(id);
            }
        }
        gone
    }

    /// Whether `id` is kept.
    pub fn has(&self, id: &MsgId) -> bool {
        self.letters.contains_key(id)
    }

    /// Letters kept.
    pub fn len(&self) -> usize {
        self.letters.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.letters.is_empty()
    }

    /// Bytes kept (ciphertext and a fixed overhead per letter).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn remove(&mut self, id: &MsgId) -> bool {
        let Some(h) = self.letters.remove(id) else { return false };
        self.bytes -= h.bytes;
        if let Some(n) = self.from_sender.get_mut(&h.sealed.from) {
            *n -= 1;
            if *n == 0 {
                self.from_sender.remove(&h.sealed.from);
            }
        }
        if let Some(r) = self.for_recipient.get_mut(&h.sealed.to) {
            r.0 -= 1;
            r.1 -= h.bytes;
            if r.0 == 0 {
                self.for_recipient.remove(&h.sealed.to);
            }
        }
        true
    }
}

/// The letter ids a recipient has seen recently. See the module docs.
#[derive(Clone, Debug)]
pub struct Inbox {
    keep_for: Duration,
    max: usize,
    seen: HashSet<MsgId>,
    by_age: VecDeque<(Instant, MsgId)>,
}

impl Inbox {
    /// Remembers ids for `keep_for`, at most `max` of them (the oldest are forgotten first).
    pub fn new(keep_for: Duration, max: usize) -> Self {
        Self { keep_for, max, seen: HashSet::new(), by_age: VecDeque::new() }
    }

    /// Whether the letter `id` is new (then it is remembered); `false` for a duplicate.
    pub fn accept(&mut self, id: MsgId, now: Instant) -> bool {
        while let Some(&(t, old)) = self.by_age.front() {
            if now.saturating_duration_since(t) < self.keep_for && self.by_age.len() < self.max {
                break;
            }
            self.by_age.pop_front();
            self.seen.remove(&old);
        }
        if !self.seen.insert(id) {
            return false;
        }
        self.by_age.push_back((now, id));
        true
    }

    /// Ids remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_keys::{key, pk};
    use super::*;

    fn letter(from: u8, to: u8, text: &str) -> (MsgId, Sealed) {
        let (sealed, _) = Sealed::seal(&key(from), &pk(to), 0, [from; 16], text.into()).unwrap();
        (sealed.id().unwrap(), sealed)
    }

    #[test]
    fn an_unanswered_letter_goes_to_holders_then_is_delivered_on_the_receipt() {
        let t0 = Instant::now();
        let c = DeliveryConfig { holders: 3, ..DeliveryConfig::default() };
        let mut out: Outbox<u32> = Outbox::new(c.clone());
        let (id, _) = letter(1, 2, "hi");
        out.send(id, pk(2), t0).unwrap();
        assert_eq!(out.poll(t0), vec![Action::Direct { id, to: pk(2) }]);
        assert_eq!(out.poll(t0 + Duration::from_secs(1)), vec![], "nothing before the direct timeout");
        let t1 = t0 + c.direct_timeout;
        assert_eq!(out.poll(t1), vec![Action::Place { id, to: pk(2), more: 3, besides: vec![] }]);
        assert_eq!(out.on_held(&id, 7), Some(Action::Status { id, status: Status::Held { by: 1 } }));
        assert_eq!(out.on_held(&id, 7), None, "the same holder twice counts once");
        let t2 = t1 + c.direct_timeout;
        assert_eq!(out.poll(t2), vec![Action::Place { id, to: pk(2), more: 2, besides: vec![7] }]);
        out.on_held(&id, 8);
        out.on_held(&id, 9);
        assert_eq!(out.status(&id), Some(Status::Held { by: 3 }));
        assert_eq!(out.poll(t2 + c.direct_timeout), vec![], "enough holders");
        assert_eq!(out.poll(t0 + c.retry_every), vec![Action::Direct { id, to: pk(2) }], "tried directly again");
        assert_eq!(out.on_receipt(&id), Some(Action::Status { id, status: Status::Delivered }));
        assert!(out.is_empty());
        assert_eq!(out.on_receipt(&id), None);
    }

    #[test]
    fn a_recipient_that_connects_is_tried_at_once_but_not_again_and_again() {
        let t0 = Instant::now();
        let c = DeliveryConfig::default();
        let mut out: Outbox<u32> = Outbox::new(c.clone());
        let (a, _) = letter(1, 2, "for 2");
        let (b, _) = letter(1, 3, "for 3");
        out.send(a, pk(2), t0).unwrap();
        out.send(b, pk(3), t0).unwrap();
        assert_eq!(out.poll(t0).len(), 2, "both tried directly once");
        assert_eq!(out.on_reachable(&pk(2), t0 + Duration::from_secs(1)), vec![], "tried a moment ago");
        let t1 = t0 + c.direct_timeout;
        assert_eq!(out.on_reachable(&pk(2), t1), vec![Action::Direct { id: a, to: pk(2) }], "long before retry_every");
        assert_eq!(out.on_reachable(&pk(2), t1), vec![], "a connection that flaps does not repeat it");
        assert_eq!(out.on_reachable(&pk(4), t1), vec![], "nothing for a peer we have no letter for");
        // The attempt counts as the direct try: the periodic retry waits retry_every from it.
        let direct = |acts: Vec<Action<u32>>| acts.into_iter().filter(|x| matches!(x, Action::Direct { .. })).count();
        assert_eq!(direct(out.poll(t0 + c.retry_every)), 1, "only b, whose last try was at t0");
        assert_eq!(direct(out.poll(t1 + c.retry_every)), 1, "a, retry_every after the try on connection");
    }

    #[test]
    fn a_letter_nobody_collects_expires_and_the_outbox_is_bounded() {
        let t0 = Instant::now();
        let c = DeliveryConfig { max_outstanding: 2, ..DeliveryConfig::default() };
        let mut out: Outbox<u32> = Outbox::new(c.clone());
        out.send([1; 32], pk(2), t0).unwrap();
        out.send([1; 32], pk(2), t0).unwrap();
        out.send([2; 32], pk(2), t0).unwrap();
        assert_eq!(out.send([3; 32], pk(2), t0), Err(OutboxError::Full(2)));
        let actions = out.poll(t0 + c.keep_for);
        assert_eq!(actions.iter().filter(|a| matches!(a, Action::Status { status: Status::Expired, .. })).count(), 2);
        assert!(out.is_empty());
    }

    #[test]
    fn a_holder_hands_letters_over_and_deletes_only_on_the_recipients_receipt() {
        let t0 = Instant::now();
        let mut h = Holding::new(HoldingConfig::default());
        let (a, sa) = letter(1, 2, "first");
        let (b, sb) = letter(3, 2, "second");
        let (c, sc) = letter(1, 4, "other");
        h.offer(a, sa, t0).unwrap();
        h.offer(c, sc.clone(), t0).unwrap();
        h.offer(c, sc, t0).unwrap();
        h.offer(b, sb, t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(h.len(), 3);
        let for2: Vec<MsgId> = h.for_recipient(&pk(2)).into_iter().map(|(id, _)| id).collect();
        assert_eq!(for2, vec![a, b]);
        assert!(!h.on_receipt(&Receipt::new(&key(9), a)), "a stranger cannot make it delete");
        assert!(!h.on_receipt(&Receipt::new(&key(4), a)), "nor another recipient");
        assert!(h.has(&a));
        assert!(h.on_receipt(&Receipt::new(&key(2), a)));
        assert!(!h.has(&a));
        assert_eq!(h.expire(t0 + HoldingConfig::default().keep_for), vec![c]);
        assert_eq!(h.len(), 1);
        assert!(h.on_receipt(&Receipt::new(&key(2), b)));
        assert_eq!(h.bytes(), 0);
    }

    #[test]
    fn quotas_keep_one_sender_or_one_recipient_from_filling_a_holder() {
        let t0 = Instant::now();
        let config = HoldingConfig { max_per_sender: 2, max_per_recipient: 3, ..HoldingConfig::default() };
        let mut h = Holding::new(config);
        for i in 0..2 {
            let (id, s) = letter(1, 2, &format!("spam {i}"));
            h.offer(id, s, t0).unwrap();
        }
        let (id, s) = letter(1, 5, "more spam");
        assert_eq!(h.offer(id, s, t0), Err(HoldRefusal::SenderFull(2)));
        let (id, s) = letter(3, 2, "honest");
        h.offer(id, s, t0).unwrap();
        let (id, s) = letter(4, 2, "too many for 2");
        assert!(matches!(h.offer(id, s, t0), Err(HoldRefusal::RecipientFull { letters: 3, .. })));
        let (id, s) = letter(4, 6, "for someone else");
        h.offer(id, s, t0).unwrap();
        let small = HoldingConfig { max_bytes: 300, ..HoldingConfig::default() };
        let mut tiny = Holding::new(small);
        let (id, s) = letter(1, 2, "a");
        tiny.offer(id, s, t0).unwrap();
        let (id, s) = letter(3, 2, "b");
        assert!(matches!(tiny.offer(id, s, t0), Err(HoldRefusal::Full(_))));
    }

    #[test]
    fn the_inbox_shows_each_letter_once_within_its_window() {
        let t0 = Instant::now();
        let mut inbox = Inbox::new(Duration::from_secs(100), 3);
        assert!(inbox.accept([1; 32], t0));
        assert!(!inbox.accept([1; 32], t0 + Duration::from_secs(5)), "a holder's copy after the sender's");
        assert!(inbox.accept([2; 32], t0));
        assert!(inbox.accept([3; 32], t0));
        assert!(inbox.accept([4; 32], t0), "the oldest is forgotten beyond the bound");
        assert_eq!(inbox.len(), 3);
        assert!(inbox.accept([1; 32], t0 + Duration::from_secs(200)));
    }
}
