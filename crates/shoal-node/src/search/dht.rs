//! Keywords in the DHT (`structured` topology).
//!
//! Each keyword of a shared name is announced as a Kademlia *provider record* under
//! `BLAKE3("shoal/kw/" + first three letters of the keyword)`. Why not a value record holding (content id,
//! name, size), as eMule Kad does: libp2p's record store keeps one value per key, so every peer publishing
//! "holiday" would overwrite the others; provider records are the multi-valued kind, are republished and
//! expire as Kademlia prescribes, and the hit itself (id, name, size) comes fresh from the provider's own
//! index when the searcher asks it, so an unshared name disappears at once. Why three letters: users type
//! word prefixes (`holid pho`); a key per prefix length would multiply announcements, and three letters keep
//! keys selective enough for the provider to filter the rest.

use std::collections::BTreeSet;
use std::sync::Arc;

use shoal_proto::search::keywords;

/// Letters of a keyword that name its DHT key.
pub(crate) const KEY_LETTERS: usize = 3;

/// The DHT key of a keyword (or of a query word of at least [`KEY_LETTERS`] letters).
pub(crate) fn keyword_key(word: &str) -> Vec<u8> {
    let mut h = blake3::Hasher::new();
    h.update(b"shoal/kw/");
    h.update(keywords::prefix(word, KEY_LETTERS).as_bytes());
    h.finalize().as_bytes().to_vec()
}

/// The keys to announce for these names.
pub(crate) fn keys_for_names<'a>(names: impl IntoIterator<Item = &'a String>) -> BTreeSet<Vec<u8>> {
    names.into_iter().flat_map(|n| keywords::keywords(n)).map(|k| keyword_key(&k)).collect()
}

/// The query word to look up: the longest (most likely the rarest) keyword. Words shorter than the key
/// are looked up whole (a published two-letter keyword has a key of its own).
pub(crate) fn lookup_word(text: &str) -> Option<String> {
    let words = keywords::words(text);
    let best = words.iter().filter(|w| keywords::is_keyword(w)).max_by_key(|w| w.chars().count()).cloned();
    best.or_else(|| words.into_iter().max_by_key(|w| w.chars().count()))
}

/// The keyword keys this peer announces, kept current as its shares change.
#[derive(Default)]
pub(crate) struct Keywords {
    published: Arc<tokio::sync::Mutex<BTreeSet<Vec<u8>>>>,
}

impl Keywords {
    /// Announces the keys of the names shared now and withdraws those of names no longer shared, one
    /// update at a time and in order (the lock is held across the announcements).
    pub(crate) fn publish(
        &self,
        store: Arc<shoal_store::Store>,
        net: shoal_net::Network,
        tasks: &crate::service::Tasks,
    ) {
        let published = self.published.clone();
        tasks.spawn(async move {
            let mut published = published.lock().await;
            let names = match crate::blocking::blocking(move || store.indexed_names()).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the local index to publish keywords");
                    return;
                }
            };
            let want = keys_for_names(&names);
            for gone in published.difference(&want) {
                let _ = net.unprovide(gone.clone()).await;
            }
            for new in want.difference(&published) {
                if let Err(e) = net.provide(new.clone()).await {
                    tracing::warn!(error = %e, "cannot announce a keyword in the DHT");
                }
            }
            tracing::debug!(keys = want.len(), "keywords announced in the DHT");
            *published = want;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_words_find_the_keys_names_were_published_under() {
        let published = keys_for_names(&["Holiday Photos 2024.zip".to_string()]);
        for q in ["holid pho", "HOLIDAY", "photos", "pho 20", "zip"] {
            let w = lookup_word(q).unwrap();
            assert!(published.contains(&keyword_key(&w)), "{q}");
        }
        assert_eq!(lookup_word("a the of"), Some("the".into()), "stop words only: still something to look up");
        assert_eq!(lookup_word("!!"), None);
    }
}
