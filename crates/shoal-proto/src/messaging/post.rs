//! A topic's message: a [`Post`], signed by its author and linked by hash to the posts its author had seen.
//!
//! Canonical form: the postcard encoding of [`Content`] (postcard is deterministic for one value), parents
//! sorted and unique. The id is BLAKE3 (keyed for this use) of that encoding, so it names the content, not
//! the signature; the signature is Ed25519 over a domain tag and the same bytes, checked with
//! `verify_strict` (no malleable signatures, no small-order keys), so nobody can post in another author's
//! name and no relay can change a byte unnoticed.
//!
//! A post's [`Body`] is its text in the clear (a public topic) or sealed with the group's key (a private
//! topic, [`super::group`]); the signature covers the sealed form, so any peer can check it.
//!
//! On the wire a post is one [`crate::wire`] frame (version byte, bounded length, postcard body) of at most
//! [`MAX_POST_FRAME`] bytes. [`Post::decode`] then [`Post::check`] are the only way in: the first rejects
//! garbage without panicking (fuzzed), the second the limits postcard cannot express and a bad signature,
//! and returns a [`Checked`] post, the only kind [`super::TopicLog`] takes.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use super::group::{GroupKey, SEAL_OVERHEAD, SealedText};
use crate::wire::{self, WireError};

/// The post format written by this build.
pub const POST_VERSION: u8 = 2;
/// Longest text, bytes (UTF-8). Larger content goes as a file and its ticket.
pub const MAX_TEXT: usize = 64 * 1024;
/// Most parents a post names (its author's latest heads in the topic).
pub const MAX_PARENTS: usize = 8;
/// Longest topic name, bytes after normalisation.
pub const MAX_TOPIC_NAME: usize = 128;
/// Largest encoded post: the text (sealed, with its nonce), the parents and the fixed fields with room to
/// spare.
pub const MAX_POST_FRAME: usize = MAX_TEXT + SEAL_OVERHEAD + 24 + MAX_PARENTS * 32 + 512;
/// How far ahead of our clock a post's time may be (clocks drift); further is refused, so that nobody can
/// keep a post at the end of every "since" window.
pub const MAX_CLOCK_SKEW_MS: u64 = 10 * 60 * 1000;

/// A post's id: keyed BLAKE3 of its canonical content.
pub type MsgId = [u8; 32];
/// An author: an Ed25519 public key (the same key as the author's libp2p peer id).
pub type AuthorKey = [u8; 32];

const SIGN_TAG: &[u8] = b"shoal/post/1\0";
const ID_CONTEXT: &str = "shoal 2026-12 post id";
const PUBLIC_TOPIC_CONTEXT: &str = "shoal 2026-12 public topic";
const PRIVATE_TOPIC_CONTEXT: &str = "shoal 2026-12 private topic";

/// Which topic a post belongs to: derived from a public name, or from a private topic's key (then only
/// those who hold the key can name it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopicId(pub [u8; 32]);

impl TopicId {
    /// The topic anyone can join by `name`. Names are compared after Unicode NFC normalisation and
    /// trimming, so "café" typed two ways is one topic.
    pub fn public(name: &str) -> Result<Self, PostError> {
        let name = topic_name(name)?;
        Ok(Self(blake3::derive_key(PUBLIC_TOPIC_CONTEXT, name.as_bytes())))
    }

    /// The topic of a private group's key (shared in an invite).
    pub fn private(key: &[u8; 32]) -> Self {
        Self(blake3::derive_key(PRIVATE_TOPIC_CONTEXT, key))
    }

    /// Lower-case hex, for logs and file names.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

/// A topic name as peers compare it: NFC, trimmed, 1 to [`MAX_TOPIC_NAME`] bytes, no control characters
/// (they would reach terminals and logs).
pub fn topic_name(name: &str) -> Result<String, PostError> {
    clean_name(name, MAX_TOPIC_NAME, "a topic name").map_err(PostError::TopicName)
}

/// A name people type (a topic, a petname) as peers compare it: NFC, trimmed, 1 to `max` bytes, no
/// control characters. The error says what is wrong, naming the thing as `what`.
pub fn clean_name(name: &str, max: usize, what: &str) -> Result<String, String> {
    let name: String = name.trim().nfc().collect();
    if name.is_empty() {
        return Err(format!("{what} cannot be empty"));
    }
    if name.len() > max {
        return Err(format!("{what} is at most {max} bytes (this one is {})", name.len()));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!("{what} cannot hold the control character {c:?}"));
    }
    Ok(name)
}

/// What the author signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// [`POST_VERSION`].
    pub version: u8,
    /// The topic.
    pub topic: TopicId,
    /// Who wrote it.
    pub author: AuthorKey,
    /// The author's own count of its posts in this topic, from 1.
    pub seq: u64,
    /// Lamport clock: 1 with no parents, else 1 + the highest parent's clock. The shared order is
    /// (clock, id), so it needs no parent to be known and cannot contradict causality.
    pub clock: u64,
    /// The author's wall clock, ms since the Unix epoch: shown to people and used for history windows,
    /// never for order.
    pub time_ms: u64,
    /// Ids of the latest posts the author had seen in the topic, sorted, unique.
    pub parents: Vec<MsgId>,
    /// The message.
    pub body: Body,
}

/// What a post says: in the clear in a public topic, sealed for the members in a private one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// A public topic's text.
    Text(String),
    /// A private topic's text, sealed with its [`GroupKey`].
    Sealed(SealedText),
}

impl Body {
    /// Bytes of the text (sealed: with the tag).
    fn len(&self) -> usize {
        match self {
            Body::Text(t) => t.len(),
            Body::Sealed(s) => s.ciphertext.len().saturating_sub(SEAL_OVERHEAD),
        }
    }
}

/// A signed post, as it travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Post {
    /// What was signed.
    pub content: Content,
    /// Ed25519 signature over [`SIGN_TAG`] and the content's encoding, in two halves (serde has no
    /// 64-byte arrays).
    pub sig: ([u8; 32], [u8; 32]),
}

/// What a new post says, before it is signed.
#[derive(Clone, Debug)]
pub struct Draft {
    /// The topic.
    pub topic: TopicId,
    /// The author's next sequence number.
    pub seq: u64,
    /// 1 + the highest clock among `parents`.
    pub clock: u64,
    /// Now, ms since the Unix epoch.
    pub time_ms: u64,
    /// The topic's heads as the author sees them.
    pub parents: Vec<MsgId>,
    /// The message.
    pub text: String,
}

/// A post whose limits and signature have been checked, with its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    post: Post,
    id: MsgId,
}

impl Checked {
    /// The post.
    pub fn post(&self) -> &Post {
        &self.post
    }

    /// Its id.
    pub fn id(&self) -> MsgId {
        self.id
    }

    /// The post, for storing or forwarding.
    pub fn into_post(self) -> Post {
        self.post
    }
}

/// Why a post was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PostError {
    /// The frame is not a post.
    #[error("not a valid post: {0}")]
    Wire(#[from] WireError),
    /// A newer post format.
    #[error("post format {got} is not known here (this peer writes {POST_VERSION}); upgrade Shoal")]
    Version {
        /// The version the post names.
        got: u8,
    },
    /// The text is over [`MAX_TEXT`].
    #[error("a message is at most {MAX_TEXT} bytes (this one is {len}); send larger content as a file")]
    TextTooLong {
        /// Its length.
        len: usize,
    },
    /// More parents than [`MAX_PARENTS`].
    #[error("a post names at most {MAX_PARENTS} parents (this one names {n})")]
    TooManyParents {
        /// How many it names.
        n: usize,
    },
    /// Parents not sorted and unique.
    #[error("a post's parents must be sorted and unique")]
    ParentsNotCanonical,
    /// Sequence number 0.
    #[error("a post's sequence number starts at 1")]
    BadSeq,
    /// A clock that no parent set can give (0, or 1 with parents).
    #[error("clock {clock} is impossible for a post with {parents} parent(s)")]
    BadClock {
        /// The claimed clock.
        clock: u64,
        /// How many parents.
        parents: usize,
    },
    /// Time too far ahead of ours.
    #[error("the post is dated {ahead_ms} ms ahead of this peer's clock (at most {MAX_CLOCK_SKEW_MS} allowed)")]
    FromTheFuture {
        /// How far ahead.
        ahead_ms: u64,
    },
    /// The author field is not a valid Ed25519 key.
    #[error("the author is not a valid Ed25519 public key")]
    BadKey,
    /// The signature does not match the content and author.
    #[error("the signature does not match the post and its author (forged or altered)")]
    BadSignature,
    /// A topic name that cannot be used.
    #[error("{0}")]
    TopicName(String),
    /// A private topic's post that does not open with the topic's key.
    #[error(transparent)]
    NotOpened(#[from] super::group::NotOpened),
    /// A post whose body does not fit its topic (sealed in a public one, in the clear in a private one).
    #[error("a post {0}")]
    WrongBody(&'static str),
}

impl Content {
    fn encoded(&self) -> Result<Vec<u8>, PostError> {
        postcard::to_stdvec(self).map_err(|e| PostError::Wire(WireError::Malformed(e.to_string())))
    }

    fn check_limits(&self) -> Result<(), PostError> {
        if self.version != POST_VERSION {
            return Err(PostError::Version { got: self.version });
        }
        if self.body.len() > MAX_TEXT {
            return Err(PostError::TextTooLong { len: self.body.len() });
        }
        if self.parents.len() > MAX_PARENTS {
            return Err(PostError::TooManyParents { n: self.parents.len() });
        }
        if self.parents.windows(2).any(|w| w[0] >= w[1]) {
            return Err(PostError::ParentsNotCanonical);
        }
        if self.seq == 0 {
            return Err(PostError::BadSeq);
        }
        let possible = if self.parents.is_empty() { self.clock == 1 } else { self.clock >= 2 };
        if !possible {
            return Err(PostError::BadClock { clock: self.clock, parents: self.parents.len() });
        }
        Ok(())
    }
}

fn signed_bytes(encoded: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGN_TAG.len() + encoded.len());
    m.extend_from_slice(SIGN_TAG);
    m.extend_from_slice(encoded);
    m
}

fn id_of(encoded: &[u8]) -> MsgId {
    let mut h = blake3::Hasher::new_derive_key(ID_CONTEXT);
    h.update(encoded);
    *h.finalize().as_bytes()
}

impl Post {
    /// Signs `draft` for a public topic as `key`'s author (parents are sorted and deduplicated here).
    pub fn sign(key: &SigningKey, draft: Draft) -> Result<Checked, PostError> {
        let body = Body::Text(draft.text.clone());
        Self::sign_body(key, draft, body)
    }

    /// Signs `draft` for the private topic of `group`, its text sealed with a random `nonce`.
    pub fn sign_sealed(
        key: &SigningKey,
        draft: Draft,
        group: &GroupKey,
        nonce: [u8; 24],
    ) -> Result<Checked, PostError> {
        if draft.text.len() > MAX_TEXT {
            return Err(PostError::TextTooLong { len: draft.text.len() });
        }
        let body = Body::Sealed(group.seal(&key.verifying_key().to_bytes(), &draft.text, nonce));
        Self::sign_body(key, draft, body)
    }

    /// The text, opened with the topic's key if it is a private topic's (`group`); a post whose body
    /// does not fit (sealed without a key, in the clear with one) is an error.
    pub fn text(&self, group: Option<&GroupKey>) -> Result<String, PostError> {
        match (&self.content.body, group) {
            (Body::Text(t), None) => Ok(t.clone()),
            (Body::Sealed(s), Some(g)) => Ok(g.open(&self.content.author, s)?),
            (Body::Sealed(_), None) => Err(PostError::WrongBody("sealed in a public topic")),
            (Body::Text(_), Some(_)) => Err(PostError::WrongBody("in the clear in a private topic")),
        }
    }

    fn sign_body(key: &SigningKey, mut draft: Draft, body: Body) -> Result<Checked, PostError> {
        draft.parents.sort_unstable();
        draft.parents.dedup();
        let content = Content {
            version: POST_VERSION,
            topic: draft.topic,
            author: key.verifying_key().to_bytes(),
            seq: draft.seq,
            clock: draft.clock,
            time_ms: draft.time_ms,
            parents: draft.parents,
            body,
        };
        content.check_limits()?;
        let encoded = content.encoded()?;
        let sig = key.sign(&signed_bytes(&encoded)).to_bytes();
        let (r, s) = sig.split_at(32);
        let mut halves = ([0u8; 32], [0u8; 32]);
        halves.0.copy_from_slice(r);
        halves.1.copy_from_slice(s);
        let id = id_of(&encoded);
        Ok(Checked { post: Post { content, sig: halves }, id })
    }

    /// Checks the limits, the time against `now_ms` and the signature; returns the post with its id.
    pub fn check(self, now_ms: u64) -> Result<Checked, PostError> {
        let c = &self.content;
        c.check_limits()?;
        if c.time_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
            return Err(PostError::FromTheFuture { ahead_ms: c.time_ms - now_ms });
        }
        let key = VerifyingKey::from_bytes(&c.author).map_err(|_| PostError::BadKey)?;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&self.sig.0);
        sig[32..].copy_from_slice(&self.sig.1);
        let encoded = c.encoded()?;
        key.verify_strict(&signed_bytes(&encoded), &Signature::from_bytes(&sig))
            .map_err(|_| PostError::BadSignature)?;
        let id = id_of(&encoded);
        Ok(Checked { post: self, id })
    }

    /// One frame of at most [`MAX_POST_FRAME`] bytes.
    pub fn encode(&self) -> Result<Vec<u8>, PostError> {
        Ok(wire::encode(self, MAX_POST_FRAME)?)
    }

    /// Reads one frame holding exactly one post. Never panics; check the post with [`Post::check`].
    pub fn decode(frame: &[u8]) -> Result<Self, PostError> {
        Ok(wire::decode_whole(frame, MAX_POST_FRAME)?)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_keys::key;
    use super::*;
    use proptest::prelude::*;

    fn draft(text: &str) -> Draft {
        Draft {
            topic: TopicId::public("rust").unwrap(),
            seq: 1,
            clock: 1,
            time_ms: 1_000,
            parents: vec![],
            text: text.into(),
        }
    }

    #[test]
    fn a_signed_post_survives_the_wire_and_keeps_its_id() {
        let signed = Post::sign(&key(1), draft("hello")).unwrap();
        let frame = signed.post().encode().unwrap();
        let back = Post::decode(&frame).unwrap().check(1_000).unwrap();
        assert_eq!(back, signed);
        assert_eq!(back.post().content.author, key(1).verifying_key().to_bytes());
    }

    #[test]
    fn a_changed_byte_or_a_borrowed_name_is_refused() {
        let signed = Post::sign(&key(1), draft("pay alice 5")).unwrap().into_post();
        let mut tampered = signed.clone();
        tampered.content.body = Body::Text("pay alice 500".into());
        assert_eq!(tampered.check(1_000), Err(PostError::BadSignature));
        // Mallory signs with her own key and names Alice as the author.
        let mut forged = Post::sign(&key(2), draft("I am alice")).unwrap().into_post();
        forged.content.author = key(1).verifying_key().to_bytes();
        assert_eq!(forged.check(1_000), Err(PostError::BadSignature));
        let mut reclocked = signed;
        reclocked.content.clock = 7;
        reclocked.content.parents = vec![[9; 32]];
        assert_eq!(reclocked.check(1_000), Err(PostError::BadSignature));
    }

    #[test]
    fn a_private_topics_post_is_sealed_signed_as_sealed_and_opens_for_members_only() {
        let group = GroupKey::from_bytes([5; 32]);
        let mut d = draft("the door code is 4711");
        d.topic = group.topic();
        let signed = Post::sign_sealed(&key(1), d.clone(), &group, [2; 24]).unwrap();
        let frame = signed.post().encode().unwrap();
        assert!(!frame.windows(4).any(|w| w == b"4711"), "the text travels sealed");
        let back = Post::decode(&frame).unwrap().check(1_000).unwrap().into_post();
        assert_eq!(back.text(Some(&group)).unwrap(), "the door code is 4711");
        assert!(matches!(back.text(None), Err(PostError::WrongBody(_))));
        assert!(matches!(back.text(Some(&GroupKey::from_bytes([6; 32]))), Err(PostError::NotOpened(_))));
        // In the clear in a private topic, or sealed with another key (an outsider's): refused.
        let plain = Post::sign(&key(1), d.clone()).unwrap().into_post();
        assert!(matches!(plain.text(Some(&group)), Err(PostError::WrongBody(_))));
        let outsider = Post::sign_sealed(&key(2), d.clone(), &GroupKey::from_bytes([6; 32]), [2; 24]).unwrap();
        assert!(matches!(outsider.post().text(Some(&group)), Err(PostError::NotOpened(_))));
        // The signature covers the sealed bytes: a relay cannot swap them.
        let mut swapped = back;
        if let Body::Sealed(s) = &mut swapped.content.body {
            s.ciphertext[0] ^= 1;
        }
        assert_eq!(swapped.check(1_000), Err(PostError::BadSignature));
        // The largest text still fits its frame sealed.
        let mut d = draft(&"x".repeat(MAX_TEXT));
        d.topic = group.topic();
        let big = Post::sign_sealed(&key(1), d, &group, [3; 24]).unwrap();
        assert!(big.post().encode().unwrap().len() <= MAX_POST_FRAME + wire::HEADER_LEN);
    }

    #[test]
    fn limits_hold_when_signing_and_when_checking() {
        let long = "x".repeat(MAX_TEXT + 1);
        assert_eq!(Post::sign(&key(1), draft(&long)).unwrap_err(), PostError::TextTooLong { len: MAX_TEXT + 1 });
        let mut d = draft("hi");
        d.parents = (0..=MAX_PARENTS as u8).map(|b| [b; 32]).collect();
        d.clock = 2;
        assert!(matches!(Post::sign(&key(1), d), Err(PostError::TooManyParents { .. })));
        let mut d = draft("hi");
        d.clock = 3;
        assert_eq!(Post::sign(&key(1), d).unwrap_err(), PostError::BadClock { clock: 3, parents: 0 });
        let late = Post::sign(&key(1), draft("a second ahead")).unwrap().into_post();
        assert!(late.check(0).is_ok(), "1 s ahead is within the skew");
        let mut d = draft("from next year");
        d.time_ms = 10 * MAX_CLOCK_SKEW_MS;
        let far = Post::sign(&key(1), d).unwrap().into_post();
        assert!(matches!(far.check(0), Err(PostError::FromTheFuture { .. })));
        // A post at the largest size still fits its frame.
        let big = Post::sign(&key(1), draft(&"é".repeat(MAX_TEXT / 2))).unwrap();
        assert!(big.post().encode().unwrap().len() <= MAX_POST_FRAME + wire::HEADER_LEN);
    }

    #[test]
    fn parents_are_put_in_canonical_order_and_an_unsorted_post_is_refused() {
        let mut d = draft("re");
        d.parents = vec![[3; 32], [1; 32], [3; 32]];
        d.clock = 5;
        let signed = Post::sign(&key(1), d).unwrap();
        assert_eq!(signed.post().content.parents, vec![[1; 32], [3; 32]]);
        let mut p = signed.into_post();
        p.content.parents.reverse();
        assert_eq!(p.check(1_000), Err(PostError::ParentsNotCanonical));
    }

    #[test]
    fn topic_names_are_normalised_and_odd_ones_refused_with_a_reason() {
        let composed = TopicId::public("caf\u{e9}").unwrap();
        assert_eq!(TopicId::public("  cafe\u{301} ").unwrap(), composed);
        assert_ne!(TopicId::public("Cafe").unwrap(), composed);
        assert!(TopicId::public("   ").is_err());
        let e = TopicId::public("bell\u{7}").unwrap_err().to_string();
        assert!(e.contains("control character"), "{e}");
        assert!(TopicId::public(&"a".repeat(MAX_TOPIC_NAME + 1)).is_err());
        assert!(TopicId::public("🐟 shoal/ops #1 ' OR 1=1 --").is_ok());
        assert_ne!(TopicId::private(&[1; 32]), TopicId::private(&[2; 32]));
    }

    #[test]
    fn a_frame_with_extra_or_missing_bytes_is_refused() {
        let frame = Post::sign(&key(1), draft("hello")).unwrap().post().encode().unwrap();
        let mut longer = frame.clone();
        longer.push(0);
        assert!(Post::decode(&longer).is_err());
        assert!(Post::decode(&frame[..frame.len() - 1]).is_err());
        assert!(Post::decode(&frame[..3]).is_err());
        let mut newer = frame;
        newer[0] = wire::VERSION + 1;
        assert!(matches!(Post::decode(&newer), Err(PostError::Wire(WireError::Version { .. }))));
    }

    proptest! {
        #[test]
        fn garbage_never_panics_and_never_checks(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(p) = Post::decode(&bytes) {
                prop_assert!(p.check(u64::MAX).is_err());
            }
        }

        #[test]
        fn any_flipped_bit_of_a_post_is_caught(at in 0usize..200, bit in 0u8..8) {
            let frame = Post::sign(&key(1), draft("a message of some length")).unwrap().post().encode().unwrap();
            let mut bad = frame.clone();
            let at = at % bad.len();
            bad[at] ^= 1 << bit;
            if let Ok(p) = Post::decode(&bad) {
                prop_assert!(p.check(u64::MAX).is_err(), "flip at byte {at} bit {bit} went unnoticed");
            }
        }
    }
}
