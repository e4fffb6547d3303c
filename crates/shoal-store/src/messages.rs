//! The messaging tables: conversations (topic posts and direct letters) with their text searchable,
//! petnames for peer ids, and the sealed letters this peer holds for others.
//!
//! - `messages`: one row per post or letter, keyed by its id, with the signed frame as received (so it
//!   can be forwarded and checked again) and its text in the `messages_text` FTS5 index (kept by
//!   triggers, so a row and its index entry change in one statement). A conversation is a topic id or,
//!   for letters, the other peer's key. Rows sort by `(clock, id)`: a post's Lamport clock (the order
//!   every peer shows, `shoal_proto::messaging::log`), a letter's time.
//! - `contacts`: petname -> peer id, both unique; names are NFC, trimmed, without control characters.
//! - `topics`: the topics this peer follows, with a private topic's key.
//! - `held`: sealed letters kept for a recipient that was offline (ciphertext only: this peer cannot read
//!   them), deleted on the recipient's receipt or when they expire.

use rusqlite::{OptionalExtension, params};

use crate::catalog::Catalog;
use crate::{Store, StoreError};

/// A topic this peer follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicRecord {
    /// The topic id.
    pub id: [u8; 32],
    /// Its name as shown (a public topic's name, or the name given to a private one).
    pub name: String,
    /// A private topic's key.
    pub key: Option<[u8; 32]>,
    /// When this peer joined it, Unix ms.
    pub joined_ms: u64,
}

/// Longest petname, bytes.
pub const MAX_PETNAME: usize = 64;

/// What a message row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    /// A topic post.
    Post,
    /// A direct letter, sent or received.
    Letter,
}

impl MessageKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Post => "post",
            Self::Letter => "letter",
        }
    }
}

/// One stored message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRecord {
    /// Post id, or letter id.
    pub id: [u8; 32],
    /// Post or letter.
    pub kind: MessageKind,
    /// The topic id, or the other peer's key for a letter.
    pub conversation: [u8; 32],
    /// Who wrote it.
    pub author: [u8; 32],
    /// The author's time, Unix ms.
    pub time_ms: u64,
    /// The sort key within the conversation: a post's clock, a letter's time.
    pub clock: u64,
    /// Parents that never came before it (posts).
    pub gap: bool,
    /// The text.
    pub text: String,
    /// A letter's delivery state (`sent`, `held`, `delivered`, `received`, `expired`); none for posts.
    pub status: Option<String>,
    /// The signed post or sealed letter as it travelled.
    pub frame: Vec<u8>,
}

fn petname(name: &str) -> Result<String, StoreError> {
    shoal_proto::messaging::post::clean_name(name, MAX_PETNAME, "a contact name").map_err(StoreError::Messages)
}

fn i(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

fn key(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<[u8; 32]> {
    let v: Vec<u8> = r.get(at)?;
    v.try_into().map_err(|v: Vec<u8>| {
        rusqlite::Error::FromSqlConversionFailure(
            at,
            rusqlite::types::Type::Blob,
            format!("{} bytes, not 32", v.len()).into(),
        )
    })
}

const COLUMNS: &str = "id, kind, conversation, author, time_ms, clock, gap, text, status, frame";

fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRecord> {
    let kind: String = r.get(1)?;
    Ok(MessageRecord {
        id: key(r, 0)?,
        kind: if kind == "post" { MessageKind::Post } else { MessageKind::Letter },
        conversation: key(r, 2)?,
        author: key(r, 3)?,
        time_ms: r.get::<_, i64>(4)?.max(0) as u64,
        clock: r.get::<_, i64>(5)?.max(0) as u64,
        gap: r.get(6)?,
        text: r.get(7)?,
        status: r.get(8)?,
        frame: r.get(9)?,
    })
}

impl Catalog {
    fn save_message(&self, m: &MessageRecord) -> Result<bool, StoreError> {
        self.with(|c| {
            let n = c.execute(
                "INSERT OR IGNORE INTO messages (id, kind, conversation, author, time_ms, clock, gap, text, status, frame)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    &m.id[..],
                    m.kind.as_str(),
                    &m.conversation[..],
                    &m.author[..],
                    i(m.time_ms),
                    i(m.clock),
                    m.gap,
                    m.text,
                    m.status,
                    m.frame
                ],
            )?;
            Ok(n == 1)
        })
    }

    fn query_messages(&self, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<MessageRecord>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(sql)?;
            let rows = st.query_map(args, message_row)?;
            rows.collect()
        })
    }
}

impl Store {
    /// Saves a message; `false` if one with its id was saved already (nothing changes then).
    pub fn save_message(&self, m: &MessageRecord) -> Result<bool, StoreError> {
        self.catalog.save_message(m)
    }

    /// Sets a letter's delivery state; whether there was such a letter.
    pub fn set_message_status(&self, id: &[u8; 32], status: &str) -> Result<bool, StoreError> {
        let n = self.catalog.with(|c| {
            c.execute("UPDATE messages SET status = ?2 WHERE id = ?1 AND kind = 'letter'", params![&id[..], status])
        })?;
        Ok(n == 1)
    }

    /// One message.
    pub fn message(&self, id: &[u8; 32]) -> Result<Option<MessageRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM messages WHERE id = ?1");
        Ok(self.catalog.query_messages(&sql, &[&&id[..]])?.into_iter().next())
    }

    /// A conversation's messages in the order peers show them, after `after` (a `(clock, id)` from an
    /// earlier page), at most `limit`.
    pub fn conversation(
        &self,
        conversation: &[u8; 32],
        after: Option<(u64, [u8; 32])>,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let (clock, id) = after.map_or((-1, Vec::new()), |(c, id)| (i(c), id.to_vec()));
        let sql = format!(
            "SELECT {COLUMNS} FROM messages WHERE conversation = ?1 AND (clock > ?2 OR (clock = ?2 AND id > ?3))
             ORDER BY clock, id LIMIT ?4"
        );
        self.catalog.query_messages(&sql, &[&&conversation[..], &clock, &id, &i(limit as u64)])
    }

    /// Messages whose text has every word of `text` (as prefixes), best matches first, at most `limit`.
    pub fn search_messages(&self, text: &str, limit: usize) -> Result<Vec<MessageRecord>, StoreError> {
        let Some(expr) = crate::index::match_expr(text) else { return Ok(Vec::new()) };
        let sql = format!(
            "SELECT {} FROM messages_text JOIN messages m ON m.n = messages_text.rowid
             WHERE messages_text MATCH ?1 ORDER BY rank LIMIT ?2",
            COLUMNS.split(", ").map(|c| format!("m.{c}")).collect::<Vec<_>>().join(", ")
        );
        self.catalog.query_messages(&sql, &[&expr, &i(limit as u64)])
    }

    /// Deletes a conversation's messages dated before `time_ms` (the history window); how many.
    pub fn forget_messages_before(&self, conversation: &[u8; 32], time_ms: u64) -> Result<usize, StoreError> {
        self.catalog.with(|c| {
            c.execute(
                "DELETE FROM messages WHERE conversation = ?1 AND time_ms < ?2",
                params![&conversation[..], i(time_ms)],
            )
        })
    }

    /// Names `peer` (a peer id as text) `name`. Refused if the name or the peer has a contact already.
    pub fn add_contact(&self, name: &str, peer: &str, now_ms: u64) -> Result<String, StoreError> {
        let name = petname(name)?;
        let taken = self.catalog.with(|c| {
            c.query_row("SELECT name FROM contacts WHERE name = ?1 OR peer = ?2", params![name, peer], |r| {
                r.get::<_, String>(0)
            })
            .optional()
        })?;
        if let Some(other) = taken {
            return Err(StoreError::Messages(if other == name {
                format!("a contact is named {name:?} already; remove it first or choose another name")
            } else {
                format!("{peer} is a contact already, as {other:?}")
            }));
        }
        self.catalog.with(|c| {
            c.execute(
                "INSERT INTO contacts (name, peer, added_at_ms) VALUES (?1, ?2, ?3)",
                params![name, peer, i(now_ms)],
            )
        })?;
        Ok(name)
    }

    /// Removes a contact; whether there was one by that name.
    pub fn remove_contact(&self, name: &str) -> Result<bool, StoreError> {
        let name = petname(name)?;
        Ok(self.catalog.with(|c| c.execute("DELETE FROM contacts WHERE name = ?1", params![name]))? == 1)
    }

    /// Every contact, `(name, peer)`, by name.
    pub fn contacts(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.catalog.with(|c| {
            let mut st = c.prepare("SELECT name, peer FROM contacts ORDER BY name")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// Follows a topic (joining one followed already changes nothing); whether it is new.
    pub fn join_topic(&self, t: &TopicRecord) -> Result<bool, StoreError> {
        let n = self.catalog.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO topics (id, name, key, joined_ms) VALUES (?1, ?2, ?3, ?4)",
                params![&t.id[..], t.name, t.key.as_ref().map(|k| k.to_vec()), i(t.joined_ms)],
            )
        })?;
        Ok(n == 1)
    }

    /// Stops following a topic (its messages stay); whether it was followed.
    pub fn leave_topic(&self, id: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self.catalog.with(|c| c.execute("DELETE FROM topics WHERE id = ?1", params![&id[..]]))? == 1)
    }

    /// The topics followed, in the order they were joined.
    pub fn topics(&self) -> Result<Vec<TopicRecord>, StoreError> {
        self.catalog.with(|c| {
            let mut st = c.prepare("SELECT id, name, key, joined_ms FROM topics ORDER BY joined_ms, id")?;
            let rows = st.query_map([], |r| {
                let secret: Option<Vec<u8>> = r.get(2)?;
                Ok(TopicRecord {
                    id: key(r, 0)?,
                    name: r.get(1)?,
                    key: secret.and_then(|k| k.try_into().ok()),
                    joined_ms: r.get::<_, i64>(3)?.max(0) as u64,
                })
            })?;
            rows.collect()
        })
    }

    /// Direct letters, sent and received, newest first, at most `limit`.
    pub fn letters(&self, limit: usize) -> Result<Vec<MessageRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM messages WHERE kind = 'letter' ORDER BY time_ms DESC, id LIMIT ?1");
        self.catalog.query_messages(&sql, &[&i(limit as u64)])
    }

    /// Keeps a sealed letter for its recipient (a letter kept already is left as it is).
    pub fn hold_letter(
        &self,
        id: &[u8; 32],
        sender: &[u8; 32],
        recipient: &[u8; 32],
        frame: &[u8],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.catalog.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO held (id, sender, recipient, frame, since_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![&id[..], &sender[..], &recipient[..], frame, i(now_ms)],
            )
        })?;
        Ok(())
    }

    /// Every letter kept, `(id, sender, recipient, frame, since_ms)`, oldest first (to rebuild the
    /// holding's bounds at start).
    #[allow(clippy::type_complexity)]
    pub fn held_letters(&self) -> Result<Vec<([u8; 32], [u8; 32], [u8; 32], Vec<u8>, u64)>, StoreError> {
        self.catalog.with(|c| {
            let mut st = c.prepare("SELECT id, sender, recipient, frame, since_ms FROM held ORDER BY since_ms, id")?;
            let rows = st.query_map([], |r| {
                Ok((key(r, 0)?, key(r, 1)?, key(r, 2)?, r.get(3)?, r.get::<_, i64>(4)?.max(0) as u64))
            })?;
            rows.collect()
        })
    }

    /// Deletes a kept letter (its recipient's receipt came, or it expired); whether it was kept.
    pub fn drop_held(&self, id: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self.catalog.with(|c| c.execute("DELETE FROM held WHERE id = ?1", params![&id[..]]))? == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        (dir, s)
    }

    fn post(n: u8, topic: u8, clock: u64, text: &str) -> MessageRecord {
        MessageRecord {
            id: [n; 32],
            kind: MessageKind::Post,
            conversation: [topic; 32],
            author: [9; 32],
            time_ms: 1_000 + n as u64,
            clock,
            gap: false,
            text: text.into(),
            status: None,
            frame: vec![n; 10],
        }
    }

    #[test]
    fn a_conversation_comes_back_in_order_page_by_page_after_a_reopen() {
        let (dir, s) = store();
        for (n, clock) in [(5u8, 2), (3, 1), (4, 2), (6, 3)] {
            assert!(s.save_message(&post(n, 1, clock, &format!("m{n}"))).unwrap());
        }
        assert!(!s.save_message(&post(5, 1, 2, "again")).unwrap(), "a duplicate is not saved twice");
        s.save_message(&post(7, 2, 1, "other topic")).unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        let all: Vec<String> = s.conversation(&[1; 32], None, 10).unwrap().into_iter().map(|m| m.text).collect();
        assert_eq!(all, ["m3", "m4", "m5", "m6"]);
        let first = s.conversation(&[1; 32], None, 2).unwrap();
        let last = first.last().map(|m| (m.clock, m.id));
        let rest: Vec<String> = s.conversation(&[1; 32], last, 10).unwrap().into_iter().map(|m| m.text).collect();
        assert_eq!(rest, ["m5", "m6"]);
        assert_eq!(s.message(&[5; 32]).unwrap().unwrap().text, "m5");
    }

    #[test]
    fn history_is_searchable_by_words_and_forgotten_past_its_window() {
        let (_dir, s) = store();
        s.save_message(&post(1, 1, 1, "Lunch at the Café tomorrow?")).unwrap();
        s.save_message(&post(2, 1, 2, "the release is out")).unwrap();
        s.save_message(&post(3, 2, 1, "café again")).unwrap();
        let hits: Vec<u8> = s.search_messages("cafe", 10).unwrap().into_iter().map(|m| m.id[0]).collect();
        assert_eq!(hits.len(), 2);
        assert!(hits.contains(&1) && hits.contains(&3));
        assert_eq!(s.search_messages("rel", 10).unwrap()[0].id, [2; 32], "words match as prefixes");
        assert!(s.search_messages("\" OR 1=1 --", 10).unwrap().is_empty());
        assert_eq!(s.forget_messages_before(&[1; 32], 1_002).unwrap(), 1);
        assert_eq!(s.search_messages("cafe", 10).unwrap().len(), 1, "the index follows the deletion");
    }

    #[test]
    fn letters_keep_their_delivery_state() {
        let (_dir, s) = store();
        let mut l = post(4, 8, 5_000, "secret");
        l.kind = MessageKind::Letter;
        l.status = Some("sent".into());
        s.save_message(&l).unwrap();
        assert!(s.set_message_status(&[4; 32], "delivered").unwrap());
        assert_eq!(s.message(&[4; 32]).unwrap().unwrap().status.as_deref(), Some("delivered"));
        s.save_message(&post(5, 8, 1, "a post")).unwrap();
        assert!(!s.set_message_status(&[5; 32], "delivered").unwrap(), "posts have no delivery state");
    }

    #[test]
    fn petnames_are_unique_normalised_and_checked() {
        let (_dir, s) = store();
        assert_eq!(s.add_contact("  Zoe\u{301} ", "12D3KooWA", 0).unwrap(), "Zo\u{e9}");
        let e = s.add_contact("Zo\u{e9}", "12D3KooWB", 0).unwrap_err().to_string();
        assert!(e.contains("already"), "{e}");
        let e = s.add_contact("bob", "12D3KooWA", 0).unwrap_err().to_string();
        assert!(e.contains("is a contact already"), "{e}");
        assert!(s.add_contact("", "12D3KooWC", 0).is_err());
        assert!(s.add_contact("bell\u{7}", "12D3KooWC", 0).unwrap_err().to_string().contains("control"));
        assert!(s.add_contact(&"x".repeat(MAX_PETNAME + 1), "12D3KooWC", 0).is_err());
        s.add_contact("'; DROP TABLE contacts; --", "12D3KooWD", 0).unwrap();
        assert_eq!(s.contacts().unwrap().len(), 2);
        assert!(s.remove_contact("Zoe\u{301}").unwrap());
        assert!(!s.remove_contact("nobody").unwrap());
    }

    #[test]
    fn held_letters_survive_a_restart_until_dropped() {
        let (dir, s) = store();
        s.hold_letter(&[1; 32], &[2; 32], &[3; 32], b"ciphertext", 10).unwrap();
        s.hold_letter(&[1; 32], &[2; 32], &[3; 32], b"other", 11).unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        let held = s.held_letters().unwrap();
        assert_eq!(held, vec![([1; 32], [2; 32], [3; 32], b"ciphertext".to_vec(), 10)]);
        assert!(s.drop_held(&[1; 32]).unwrap());
        assert!(s.held_letters().unwrap().is_empty());
    }

    #[test]
    fn followed_topics_and_their_keys_survive_a_restart() {
        let (dir, s) = store();
        let private = TopicRecord { id: [1; 32], name: "team".into(), key: Some([7; 32]), joined_ms: 5 };
        let public = TopicRecord { id: [2; 32], name: "rust".into(), key: None, joined_ms: 6 };
        assert!(s.join_topic(&private).unwrap());
        assert!(s.join_topic(&public).unwrap());
        assert!(!s.join_topic(&public).unwrap(), "joining twice changes nothing");
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.topics().unwrap(), vec![private, public.clone()]);
        assert!(s.leave_topic(&[1; 32]).unwrap());
        assert_eq!(s.topics().unwrap(), vec![public]);
    }

    #[test]
    fn letters_list_newest_first_without_posts() {
        let (_dir, s) = store();
        s.save_message(&post(1, 1, 1, "a post")).unwrap();
        for n in [2u8, 3] {
            let m = MessageRecord { kind: MessageKind::Letter, status: Some("sent".into()), ..post(n, 9, 0, "letter") };
            s.save_message(&m).unwrap();
        }
        let ids: Vec<u8> = s.letters(10).unwrap().iter().map(|m| m.id[0]).collect();
        assert_eq!(ids, [3, 2]);
    }
}
