//! How names become words, the same way on every peer.
//!
//! A name is folded (lowercase, accents removed: `Été` -> `ete`) and split on anything that is not a letter
//! or a digit. A query word matches a name when it is a prefix of one of the name's words, so `holid pho`
//! finds `Holiday Photos 2024.zip`. The local index does the same in SQLite FTS5 (`unicode61
//! remove_diacritics 2` with prefix queries); [`matches`] is the Rust twin used where there is no SQLite (the
//! simulator, digests) and to check that both agree.
//!
//! [`keywords`] is what gets published or hashed into digests: the words of a name without stop words and
//! one-letter words, which would match nearly everything.

use std::collections::BTreeSet;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Words too common to be worth publishing or routing on.
pub const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "at", "by", "de", "del", "der", "die", "das", "du", "el", "en", "et", "for", "from", "in", "is",
    "la", "le", "les", "of", "on", "or", "the", "to", "und", "with",
];

/// Lowercase, without accents.
pub fn fold(s: &str) -> String {
    s.nfd().filter(|c| !is_combining_mark(*c)).flat_map(char::to_lowercase).collect()
}

/// The folded words of `s`, in order (duplicates kept).
pub fn words(s: &str) -> Vec<String> {
    fold(s).split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_owned).collect()
}

/// True for a word worth indexing: two characters or more and not a stop word.
pub fn is_keyword(w: &str) -> bool {
    w.chars().nth(1).is_some() && !STOP_WORDS.contains(&w)
}

/// The keywords of a name: its folded words, without stop words and one-letter words.
pub fn keywords(name: &str) -> BTreeSet<String> {
    words(name).into_iter().filter(|w| is_keyword(w)).collect()
}

/// True when every word of `query` is a prefix of some word of `name` (case and accents ignored). A query
/// without words matches nothing.
pub fn matches(query: &str, name: &str) -> bool {
    let q = words(query);
    if q.is_empty() {
        return false;
    }
    let n = words(name);
    q.iter().all(|qw| n.iter().any(|nw| nw.starts_with(qw.as_str())))
}

/// The first `n` characters of a word (all of it when shorter).
pub fn prefix(word: &str, n: usize) -> &str {
    match word.char_indices().nth(n) {
        Some((i, _)) => &word[..i],
        None => word,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_and_accents() {
        assert_eq!(fold("Été À Noël"), "ete a noel");
        assert_eq!(words("Holiday Photos 2024.zip"), ["holiday", "photos", "2024", "zip"]);
        assert_eq!(words("  --  "), Vec::<String>::new());
    }

    #[test]
    fn keywords_drop_stop_words_and_single_letters() {
        let k: Vec<_> = keywords("The Lord of the Rings - a Film.mkv").into_iter().collect();
        assert_eq!(k, ["film", "lord", "mkv", "rings"]);
    }

    #[test]
    fn prefix_matching() {
        assert!(matches("holid pho", "Holiday Photos 2024.zip"));
        assert!(matches("HOLIDAY", "holiday.txt"));
        assert!(matches("noel", "Noël en famille.jpg"));
        assert!(!matches("olid", "Holiday.zip"));
        assert!(!matches("holid cat", "Holiday Photos.zip"));
        assert!(!matches("", "anything"));
    }

    #[test]
    fn prefix_of_multibyte_word() {
        assert_eq!(prefix("ééé", 2), "éé");
        assert_eq!(prefix("ab", 3), "ab");
    }
}
