//! Peer ids and the keys messaging signs and seals with.
//!
//! A libp2p peer id of an Ed25519 identity is that public key itself (an identity multihash of its
//! protobuf encoding), so the key a letter is sealed to, and the author key of a post, come from the peer
//! id alone: nobody needs to publish keys, and nobody can pair another key with a peer's id.

use ed25519_dalek::SigningKey;
use libp2p::PeerId;
use libp2p::identity::{Keypair, PublicKey};
use shoal_proto::messaging::{AuthorKey, TopicId};

use super::MessagingError;

/// This peer's signing key, from its libp2p identity.
pub(crate) fn signing_key(key: &Keypair) -> Result<SigningKey, MessagingError> {
    let ed = key
        .clone()
        .try_into_ed25519()
        .map_err(|_| MessagingError::Compose("this peer's identity is not an Ed25519 key".into()))?;
    let secret: [u8; 32] = ed
        .secret()
        .as_ref()
        .try_into()
        .map_err(|_| MessagingError::Compose("this peer's Ed25519 secret is not 32 bytes".into()))?;
    Ok(SigningKey::from_bytes(&secret))
}

/// The Ed25519 key inside a peer id, if it holds one.
pub(crate) fn author_of(peer: &PeerId) -> Option<AuthorKey> {
    let mh = peer.as_ref();
    if mh.code() != 0 {
        return None;
    }
    let pk = PublicKey::try_decode_protobuf(mh.digest()).ok()?;
    Some(pk.try_into_ed25519().ok()?.to_bytes())
}

/// The peer id of an author key.
pub(crate) fn peer_of(author: &AuthorKey) -> Option<PeerId> {
    let ed = libp2p::identity::ed25519::PublicKey::try_from_bytes(author).ok()?;
    Some(PublicKey::from(ed).to_peer_id())
}

/// The peer id of an author key as text, or the key in hex if it is not one.
pub(crate) fn peer_text(author: &AuthorKey) -> String {
    peer_of(author).map_or_else(|| hex(author), |p| p.to_string())
}

/// The id a peer's letters are found under where holders advertise them (`holders.rs`): derived from the
/// peer id, so the recipient and its holders compute it alone, and never a file's id.
pub fn mailbox_id(peer: &PeerId) -> shoal_store::ContentId {
    shoal_store::ContentId(blake3::derive_key("shoal messaging mailbox v1", &peer.to_bytes()))
}

/// The gossipsub topic of a messaging topic.
pub(crate) fn gossip_topic(t: &TopicId) -> String {
    format!("shoal/m/1/{}", t.to_hex())
}

pub(crate) fn hex(b: &[u8; 32]) -> String {
    data_encoding::HEXLOWER.encode(b)
}

pub(crate) fn unhex(s: &str) -> Option<[u8; 32]> {
    data_encoding::HEXLOWER_PERMISSIVE.decode(s.as_bytes()).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_id_gives_its_key_and_back() {
        let k = Keypair::generate_ed25519();
        let peer = k.public().to_peer_id();
        let author = author_of(&peer).unwrap();
        assert_eq!(author, signing_key(&k).unwrap().verifying_key().to_bytes());
        assert_eq!(peer_of(&author), Some(peer));
        assert_eq!(unhex(&hex(&author)), Some(author));
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn a_mailbox_id_is_the_peers_own_and_not_its_key() {
        let a = Keypair::generate_ed25519().public().to_peer_id();
        let b = Keypair::generate_ed25519().public().to_peer_id();
        assert_eq!(mailbox_id(&a), mailbox_id(&a));
        assert_ne!(mailbox_id(&a), mailbox_id(&b));
        assert_ne!(mailbox_id(&a).0, author_of(&a).unwrap());
    }
}
