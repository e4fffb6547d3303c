//! A private topic: its members' shared key, and the text of its posts sealed with it.
//!
//! Members hold one 32-byte [`GroupKey`] (given in an invite). The topic's id is derived from it
//! ([`super::TopicId::private`]), and each post's text is sealed with XChaCha20-Poly1305 under a key
//! derived from it for this use only, with a random 24-byte nonce per post (at that size random nonces do
//! not collide) and the topic and the author as associated data, so a sealed text cannot be moved into
//! another topic or under another author's name. The rest of the post (author, times, parents, size) stays
//! readable, so that every peer, member or not, can check signatures and order and carry the topic; only
//! members can read what was said. A post in a private topic that does not open with the key (a
//! non-member's, or altered) is refused, and so is one in the clear.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

use super::post::{AuthorKey, TopicId};

const TEXT_KEY_CONTEXT: &str = "shoal 2026-12 private topic text";
/// Bytes the seal adds to a text (Poly1305's tag).
pub const SEAL_OVERHEAD: usize = 16;

/// A private topic's key. Debug output does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct GroupKey([u8; 32]);

impl std::fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GroupKey(topic {})", self.topic().to_hex())
    }
}

/// A post's text sealed with its topic's [`GroupKey`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedText {
    /// Random, one per post.
    pub nonce: [u8; 24],
    /// The text's UTF-8 bytes, sealed, with the tag.
    pub ciphertext: Vec<u8>,
}

/// Why a sealed text did not open.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the text does not open with this topic's key (a non-member's post, or altered)")]
pub struct NotOpened;

impl GroupKey {
    /// The key from its 32 bytes (an invite's).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Its bytes, to put in an invite.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The topic this key opens.
    pub fn topic(&self) -> TopicId {
        TopicId::private(&self.0)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&Key::from(blake3::derive_key(TEXT_KEY_CONTEXT, &self.0)))
    }

    /// Seals `text` for this topic's members, as `author`'s post; `nonce` must be random.
    pub fn seal(&self, author: &AuthorKey, text: &str, nonce: [u8; 24]) -> SealedText {
        let aad = associated(&self.topic(), author);
        // Encryption into a Vec cannot fail for texts within the post limit (the only error is a buffer
        // too small, and a Vec grows); an empty ciphertext would just not open.
        let ciphertext = self
            .cipher()
            .encrypt(&XNonce::from(nonce), Payload { msg: text.as_bytes(), aad: &aad })
            .unwrap_or_default();
        SealedText { nonce, ciphertext }
    }

    /// Opens a text sealed by `author` for this topic.
    pub fn open(&self, author: &AuthorKey, sealed: &SealedText) -> Result<String, NotOpened> {
        let aad = associated(&self.topic(), author);
        let plain = self
            .cipher()
            .decrypt(&XNonce::from(sealed.nonce), Payload { msg: &sealed.ciphertext, aad: &aad })
            .map_err(|_| NotOpened)?;
        String::from_utf8(plain).map_err(|_| NotOpened)
    }
}

fn associated(topic: &TopicId, author: &AuthorKey) -> [u8; 64] {
    let mut aad = [0u8; 64];
    aad[..32].copy_from_slice(&topic.0);
    aad[32..].copy_from_slice(author);
    aad
}

#[cfg(test)]
mod tests {
    use super::super::test_keys::pk;
    use super::*;

    #[test]
    fn members_read_what_members_wrote() {
        let k = GroupKey::from_bytes([7; 32]);
        let s = k.seal(&pk(1), "meet at noon", [1; 24]);
        assert_eq!(k.open(&pk(1), &s).as_deref(), Ok("meet at noon"));
        assert!(!s.ciphertext.windows(4).any(|w| w == b"noon"), "the text is not in the clear");
        assert_eq!(s.ciphertext.len(), "meet at noon".len() + SEAL_OVERHEAD);
    }

    #[test]
    fn another_key_another_author_or_a_flipped_bit_does_not_open() {
        let k = GroupKey::from_bytes([7; 32]);
        let s = k.seal(&pk(1), "meet at noon", [1; 24]);
        assert_eq!(GroupKey::from_bytes([8; 32]).open(&pk(1), &s), Err(NotOpened));
        assert_eq!(k.open(&pk(2), &s), Err(NotOpened), "moved under another author's name");
        let mut flipped = s.clone();
        flipped.ciphertext[0] ^= 1;
        assert_eq!(k.open(&pk(1), &flipped), Err(NotOpened));
        let mut nonce = s;
        nonce.nonce[0] ^= 1;
        assert_eq!(k.open(&pk(1), &nonce), Err(NotOpened));
    }

    #[test]
    fn the_key_is_not_in_debug_output() {
        let k = GroupKey::from_bytes([0xab; 32]);
        assert!(!format!("{k:?}").contains(&"ab".repeat(32)));
    }
}
