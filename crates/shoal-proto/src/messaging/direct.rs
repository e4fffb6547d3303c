//! Direct messages: a [`Letter`] to one peer, sealed so that only that peer can read it, signed so that
//! nobody can write one in another's name, and a [`Receipt`] that only the recipient can make.
//!
//! Encryption is HPKE (RFC 9180, the `hpke` crate: DHKEM X25519 with HKDF-SHA256, ChaCha20-Poly1305,
//! base mode) to the recipient's X25519 key, which is its Ed25519 identity key mapped to Montgomery form
//! (as age and libsodium do): a sender needs only the recipient's peer id, not a key published elsewhere,
//! which is what lets a letter be written to a peer that is offline. Inside, the letter carries the
//! sender's Ed25519 signature over the recipient and the content, so a holder or a relay that reads the
//! outside (who from, who to, a ciphertext) can neither read the letter nor make one. No forward secrecy:
//! a recipient's identity key, if stolen, opens the letters sent to it before (a double ratchet, e.g.
//! vodozemac's Olm, would not; see `docs/ARCHITECTURE.md`, "Messaging").
//!
//! [`Sealed`] is what holders keep and forward: one [`crate::wire`] frame of at most [`MAX_SEALED_FRAME`]
//! bytes; its id ([`Sealed::id`]) is what receipts and deletions name.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use serde::{Deserialize, Serialize};

use super::post::{AuthorKey, MAX_CLOCK_SKEW_MS, MAX_TEXT, MsgId};
use crate::wire::{self, WireError};

/// The letter format written by this build.
pub const LETTER_VERSION: u8 = 1;
/// Largest sealed letter on the wire: the text, the signature, HPKE's key and tag, with room to spare.
pub const MAX_SEALED_FRAME: usize = MAX_TEXT + 1024;

const INFO: &[u8] = b"shoal/direct/1";
const SIGN_TAG: &[u8] = b"shoal/letter/1\0";
const RECEIPT_TAG: &[u8] = b"shoal/receipt/1\0";
const LETTER_ID_CONTEXT: &str = "shoal 2026-12 letter id";
const SEALED_ID_CONTEXT: &str = "shoal 2026-12 sealed id";

type Kem = X25519HkdfSha256;

/// What the sender writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Letter {
    /// [`LETTER_VERSION`].
    pub version: u8,
    /// The sender.
    pub from: AuthorKey,
    /// The recipient.
    pub to: AuthorKey,
    /// Random, so two letters with the same text at the same millisecond differ.
    pub nonce: [u8; 16],
    /// The sender's wall clock, ms since the Unix epoch.
    pub time_ms: u64,
    /// The message.
    pub text: String,
}

/// The letter and its signature, as encrypted.
#[derive(Serialize, Deserialize)]
struct Inner {
    letter: Letter,
    sig: ([u8; 32], [u8; 32]),
}

/// A sealed letter: what holders see and keep.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// [`LETTER_VERSION`].
    pub version: u8,
    /// The sender (holders bound what one sender may leave with them).
    pub from: AuthorKey,
    /// The recipient (holders hand it over when it asks).
    pub to: AuthorKey,
    /// HPKE's encapsulated key.
    pub enc: [u8; 32],
    /// The encrypted [`Inner`], with its tag.
    pub ciphertext: Vec<u8>,
}

/// A letter that was opened and checked, with its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The letter.
    pub letter: Letter,
    /// Its id: the same for every copy, whoever carried it.
    pub id: MsgId,
}

/// The recipient's word that it has a letter: holders delete their copy when they see one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// [`Sealed::id`] of the copy received.
    pub sealed: MsgId,
    /// Who received it (the letter's recipient).
    pub by: AuthorKey,
    /// Its signature over the two.
    pub sig: ([u8; 32], [u8; 32]),
}

/// Why a letter could not be sealed or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DirectError {
    /// Not a sealed letter.
    #[error("not a valid sealed letter: {0}")]
    Wire(#[from] WireError),
    /// A newer format.
    #[error("letter format {got} is not known here (this peer writes {LETTER_VERSION}); upgrade Shoal")]
    Version {
        /// The version named.
        got: u8,
    },
    /// The text is over [`MAX_TEXT`].
    #[error("a message is at most {MAX_TEXT} bytes (this one is {len}); send larger content as a file")]
    TextTooLong {
        /// Its length.
        len: usize,
    },
    /// A key that is not a valid Ed25519 public key.
    #[error("{0} is not a valid Ed25519 public key")]
    BadKey(&'static str),
    /// Sealed for someone else.
    #[error("this letter is for another peer")]
    NotForUs,
    /// Decryption failed: altered in transit, or not sealed to our key.
    #[error("the letter does not decrypt with this peer's key (altered, or sealed to another key)")]
    Undecryptable,
    /// Decrypted, but the inside names other peers than the outside, or its signature is wrong.
    #[error("the letter's signature does not match its sender (forged)")]
    Forged,
    /// Dated too far ahead.
    #[error("the letter is dated {ahead_ms} ms ahead of this peer's clock")]
    FromTheFuture {
        /// How far ahead.
        ahead_ms: u64,
    },
    /// The encryption library failed.
    #[error("could not seal the letter: {0}")]
    Seal(String),
}

fn split(sig: Signature) -> ([u8; 32], [u8; 32]) {
    let b = sig.to_bytes();
    let mut halves = ([0u8; 32], [0u8; 32]);
    halves.0.copy_from_slice(&b[..32]);
    halves.1.copy_from_slice(&b[32..]);
    halves
}

fn join(halves: &([u8; 32], [u8; 32])) -> Signature {
    let mut b = [0u8; 64];
    b[..32].copy_from_slice(&halves.0);
    b[32..].copy_from_slice(&halves.1);
    Signature::from_bytes(&b)
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, DirectError> {
    postcard::to_stdvec(v).map_err(|e| DirectError::Wire(WireError::Malformed(e.to_string())))
}

fn tagged(tag: &[u8], body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(tag.len() + body.len());
    m.extend_from_slice(tag);
    m.extend_from_slice(body);
    m
}

/// What both sides authenticate besides the ciphertext: the outside's fields.
fn aad(version: u8, from: &AuthorKey, to: &AuthorKey) -> Vec<u8> {
    let mut a = Vec::with_capacity(65);
    a.push(version);
    a.extend_from_slice(from);
    a.extend_from_slice(to);
    a
}

impl Letter {
    /// The letter's id: keyed BLAKE3 of its encoding.
    pub fn id(&self) -> Result<MsgId, DirectError> {
        Ok(blake3::derive_key(LETTER_ID_CONTEXT, &encode(self)?))
    }
}

impl Sealed {
    /// Writes `text` from `key`'s owner to `to`, dated `time_ms`, and seals it. `nonce` must be random.
    pub fn seal(
        key: &SigningKey,
        to: &AuthorKey,
        time_ms: u64,
        nonce: [u8; 16],
        text: String,
    ) -> Result<(Self, MsgId), DirectError> {
        if text.len() > MAX_TEXT {
            return Err(DirectError::TextTooLong { len: text.len() });
        }
        let recipient = VerifyingKey::from_bytes(to).map_err(|_| DirectError::BadKey("the recipient"))?;
        let from = key.verifying_key().to_bytes();
        let letter = Letter { version: LETTER_VERSION, from, to: *to, nonce, time_ms, text };
        let encoded = encode(&letter)?;
        let sig = split(key.sign(&tagged(SIGN_TAG, &encoded)));
        let id = blake3::derive_key(LETTER_ID_CONTEXT, &encoded);
        let inner = encode(&Inner { letter, sig })?;
        let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(&recipient.to_montgomery().to_bytes())
            .map_err(|e| DirectError::Seal(e.to_string()))?;
        let (enc, ciphertext) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, Kem>(
            &OpModeS::Base,
            &pk,
            INFO,
            &inner,
            &aad(LETTER_VERSION, &from, to),
        )
        .map_err(|e| DirectError::Seal(e.to_string()))?;
        let mut enc_bytes = [0u8; 32];
        enc_bytes.copy_from_slice(&enc.to_bytes());
        Ok((Self { version: LETTER_VERSION, from, to: *to, enc: enc_bytes, ciphertext }, id))
    }

    /// Opens a letter sealed to `key`'s owner and checks it; `now_ms` bounds its date.
    pub fn open(&self, key: &SigningKey, now_ms: u64) -> Result<Opened, DirectError> {
        if self.version != LETTER_VERSION {
            return Err(DirectError::Version { got: self.version });
        }
        if self.to != key.verifying_key().to_bytes() {
            return Err(DirectError::NotForUs);
        }
        let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(&key.to_scalar_bytes())
            .map_err(|_| DirectError::Undecryptable)?;
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&self.enc).map_err(|_| DirectError::Undecryptable)?;
        let plain = hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, Kem>(
            &OpModeR::Base,
            &sk,
            &enc,
            INFO,
            &self.ciphertext,
            &aad(self.version, &self.from, &self.to),
        )
        .map_err(|_| DirectError::Undecryptable)?;
        let inner: Inner = wire::decode_body(&plain)?;
        let letter = inner.letter;
        if letter.version != LETTER_VERSION {
            return Err(DirectError::Version { got: letter.version });
        }
        if letter.from != self.from || letter.to != self.to {
            return Err(DirectError::Forged);
        }
        if letter.text.len() > MAX_TEXT {
            return Err(DirectError::TextTooLong { len: letter.text.len() });
        }
        if letter.time_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
            return Err(DirectError::FromTheFuture { ahead_ms: letter.time_ms - now_ms });
        }
        let sender = VerifyingKey::from_bytes(&letter.from).map_err(|_| DirectError::BadKey("the sender"))?;
        let encoded = encode(&letter)?;
        sender.verify_strict(&tagged(SIGN_TAG, &encoded), &join(&inner.sig)).map_err(|_| DirectError::Forged)?;
        let id = blake3::derive_key(LETTER_ID_CONTEXT, &encoded);
        Ok(Opened { letter, id })
    }

    /// The id holders and receipts use: keyed BLAKE3 of the sealed letter's encoding.
    pub fn id(&self) -> Result<MsgId, DirectError> {
        Ok(blake3::derive_key(SEALED_ID_CONTEXT, &encode(self)?))
    }

    /// One frame of at most [`MAX_SEALED_FRAME`] bytes.
    pub fn encode(&self) -> Result<Vec<u8>, DirectError> {
        Ok(wire::encode(self, MAX_SEALED_FRAME)?)
    }

    /// Reads one frame holding exactly one sealed letter; never panics.
    pub fn decode(frame: &[u8]) -> Result<Self, DirectError> {
        Ok(wire::decode_whole(frame, MAX_SEALED_FRAME)?)
    }
}

impl Receipt {
    /// The recipient's receipt for `sealed`.
    pub fn new(key: &SigningKey, sealed: MsgId) -> Self {
        let by = key.verifying_key().to_bytes();
        let sig = split(key.sign(&receipt_bytes(&sealed, &by)));
        Self { sealed, by, sig }
    }

    /// Whether this receipt was made by `to`, the recipient a holder keeps the letter for: only then may
    /// the holder delete it.
    pub fn is_from(&self, to: &AuthorKey) -> bool {
        if &self.by != to {
            return false;
        }
        VerifyingKey::from_bytes(&self.by)
            .is_ok_and(|k| k.verify_strict(&receipt_bytes(&self.sealed, &self.by), &join(&self.sig)).is_ok())
    }
}

fn receipt_bytes(sealed: &MsgId, by: &AuthorKey) -> Vec<u8> {
    let mut m = tagged(RECEIPT_TAG, sealed);
    m.extend_from_slice(by);
    m
}

#[cfg(test)]
mod tests {
    use super::super::test_keys::{key, pk};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_the_recipient_reads_it_and_it_names_its_sender() {
        let (sealed, id) = Sealed::seal(&key(1), &pk(2), 5_000, [7; 16], "meet at noon".into()).unwrap();
        let frame = sealed.encode().unwrap();
        assert!(!frame.windows(4).any(|w| w == b"noon"), "plain text in the sealed frame");
        let back = Sealed::decode(&frame).unwrap();
        let opened = back.open(&key(2), 5_000).unwrap();
        assert_eq!(opened.letter.text, "meet at noon");
        assert_eq!(opened.letter.from, pk(1));
        assert_eq!(opened.id, id);
        assert_eq!(back.open(&key(3), 5_000), Err(DirectError::NotForUs));
        // A third peer that rewrites the outside to name itself still cannot decrypt.
        let mut stolen = back.clone();
        stolen.to = pk(3);
        assert_eq!(stolen.open(&key(3), 5_000), Err(DirectError::Undecryptable));
    }

    #[test]
    fn a_changed_byte_or_a_borrowed_name_is_refused() {
        let (sealed, _) = Sealed::seal(&key(1), &pk(2), 5_000, [7; 16], "pay bob 5".into()).unwrap();
        let mut altered = sealed.clone();
        altered.ciphertext[10] ^= 1;
        assert_eq!(altered.open(&key(2), 5_000), Err(DirectError::Undecryptable));
        let mut renamed = sealed.clone();
        renamed.from = pk(9);
        assert_eq!(renamed.open(&key(2), 5_000), Err(DirectError::Undecryptable), "the outside is authenticated");
        // Mallory seals her own letter and writes Alice's key on the outside: HPKE binds the outside, and
        // the letter inside names Mallory, so either way it is refused.
        let (mut forged, _) = Sealed::seal(&key(6), &pk(2), 5_000, [1; 16], "I am alice".into()).unwrap();
        forged.from = pk(1);
        assert!(forged.open(&key(2), 5_000).is_err());
    }

    #[test]
    fn dates_lengths_and_keys_are_checked() {
        let long = "x".repeat(MAX_TEXT + 1);
        assert_eq!(
            Sealed::seal(&key(1), &pk(2), 0, [0; 16], long).unwrap_err(),
            DirectError::TextTooLong { len: MAX_TEXT + 1 }
        );
        let (late, _) = Sealed::seal(&key(1), &pk(2), 10 * MAX_CLOCK_SKEW_MS, [0; 16], "x".into()).unwrap();
        assert!(matches!(late.open(&key(2), 0), Err(DirectError::FromTheFuture { .. })));
        // Bytes that are not a point on the curve.
        let bad = (0u8..=255).map(|n| [n; 32]).find(|b| VerifyingKey::from_bytes(b).is_err()).unwrap();
        assert!(matches!(Sealed::seal(&key(1), &bad, 0, [0; 16], "x".into()), Err(DirectError::BadKey(_))));
        let (big, _) = Sealed::seal(&key(1), &pk(2), 0, [0; 16], "é".repeat(MAX_TEXT / 2)).unwrap();
        assert!(big.encode().unwrap().len() <= MAX_SEALED_FRAME + wire::HEADER_LEN);
    }

    #[test]
    fn two_letters_with_one_text_differ_and_a_copy_keeps_its_id() {
        let (a, ida) = Sealed::seal(&key(1), &pk(2), 0, [1; 16], "hi".into()).unwrap();
        let (b, idb) = Sealed::seal(&key(1), &pk(2), 0, [2; 16], "hi".into()).unwrap();
        assert_ne!(ida, idb);
        assert_ne!(a.id().unwrap(), b.id().unwrap());
        let copy = Sealed::decode(&a.encode().unwrap()).unwrap();
        assert_eq!(copy.id().unwrap(), a.id().unwrap());
    }

    #[test]
    fn only_the_recipient_can_make_holders_delete() {
        let (sealed, _) = Sealed::seal(&key(1), &pk(2), 0, [1; 16], "hi".into()).unwrap();
        let id = sealed.id().unwrap();
        assert!(Receipt::new(&key(2), id).is_from(&pk(2)));
        assert!(!Receipt::new(&key(3), id).is_from(&pk(2)), "a stranger's receipt");
        let mut lie = Receipt::new(&key(3), id);
        lie.by = pk(2);
        assert!(!lie.is_from(&pk(2)), "a stranger's receipt in the recipient's name");
    }

    proptest! {
        #[test]
        fn garbage_never_panics_and_never_opens(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(s) = Sealed::decode(&bytes) {
                prop_assert!(s.open(&key(2), u64::MAX).is_err());
            }
        }
    }
}
