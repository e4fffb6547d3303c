//! Messaging verbs, through the running daemon (a peer must stay online to receive): `chat`, `msg`,
//! `inbox`, `topics`, `contact`, `export`. Each prints words on a terminal and the API's types with
//! `--json`.

use std::time::Duration;

use anyhow::{Context, bail};
use shoal_api::client::Client;
use shoal_api::types::MessageView;
use tokio::io::AsyncBufReadExt;

use crate::cli::{ContactAction, TopicsAction};

/// How often `shoal chat` looks for new posts while it runs.
const CHAT_POLL: Duration = Duration::from_millis(300);

/// `HH:MM:SS` (UTC) of a Unix time in ms.
fn clock(ms: u64) -> String {
    let s = (ms / 1000) % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

fn who(m: &MessageView) -> String {
    if m.mine {
        return "me".into();
    }
    m.author_name.clone().unwrap_or_else(|| {
        let p = &m.author;
        // The tail of a peer id tells peers apart; the head is the same for every Ed25519 id.
        format!("…{}", &p[p.len().saturating_sub(8)..])
    })
}

/// Text from other peers as a terminal may show it: control characters (escape sequences could move the
/// cursor, rewrite earlier lines or set the window title) become visible `\u{..}` escapes; line breaks
/// and tabs stay.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() && c != '\n' && c != '\t' { c.escape_unicode().to_string() } else { c.to_string() })
        .collect()
}

fn line(m: &MessageView) -> String {
    let gap = if m.gap { "[some earlier messages are missing] " } else { "" };
    let status = match (&m.status, m.kind.as_str()) {
        (Some(s), "letter") if m.mine => format!("  ({s})"),
        _ => String::new(),
    };
    format!("{} {}{}: {}{}", clock(m.time_ms), gap, printable(&who(m)), printable(&m.text), status)
}

fn print(m: &MessageView, json: bool) -> anyhow::Result<()> {
    if json { super::print_line(&serde_json::to_string(m)?) } else { super::print_line(&line(m)) }
}

/// `shoal chat TOPIC`: joins it, prints its recent posts, then sends each line typed and prints each post
/// that arrives, until end of input or Ctrl-C. With `--send`, posts one text and exits.
pub(crate) async fn chat(
    c: &Client,
    topic: &str,
    send: Option<String>,
    history: usize,
    json: bool,
) -> anyhow::Result<()> {
    // A topic followed already (a private one too) is used as it is; otherwise the public one of that name.
    let followed = c.topics().await?.into_iter().find(|t| t.name == topic.trim() || t.id == topic);
    let t = match followed {
        Some(t) => t,
        None => c.join_topic(topic, None).await?,
    };
    if let Some(text) = send {
        let m = c.write_post(&t.id, &text).await?;
        return print(&m, json);
    }
    // The last `history` posts: read the whole log page by page, keep the tail.
    let mut shown: Vec<MessageView> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = c.topic_messages(&t.id, after.as_deref(), 1000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        shown.extend(page);
        if shown.len() > history {
            shown.drain(..shown.len() - history);
        }
    }
    for m in &shown {
        print(m, json)?;
    }
    if !json {
        eprintln!(
            "-- {} ({} peers follow it here); type a line and press Enter to send, Ctrl-D to leave",
            t.name, t.peers
        );
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut tick = tokio::time::interval(CHAT_POLL);
    let mut seen: std::collections::HashSet<String> = shown.iter().map(|m| m.id.clone()).collect();
    loop {
        tokio::select! {
            l = lines.next_line() => match l.context("reading stdin")? {
                Some(text) if text.trim().is_empty() => {}
                Some(text) => {
                    let m = c.write_post(&t.id, &text).await?;
                    seen.insert(m.id.clone());
                    print(&m, json)?;
                }
                None => return Ok(()),
            },
            _ = tick.tick() => {
                // Posts come in the shared order; one that arrives late may sort before ones shown.
                loop {
                    let page = c.topic_messages(&t.id, after.as_deref(), 1000).await?;
                    let Some(last) = page.last() else { break };
                    after = Some(last.id.clone());
                    for m in page {
                        if seen.insert(m.id.clone()) {
                            print(&m, json)?;
                        }
                    }
                }
            }
        }
    }
}

/// `shoal msg PEER TEXT`.
pub(crate) async fn msg(c: &Client, to: &str, text: &str, json: bool) -> anyhow::Result<()> {
    let m = c.write_letter(to, text).await?;
    if json {
        return print(&m, true);
    }
    super::print_line(&format!("sealed for {} and on its way ({})", m.conversation, m.status.unwrap_or_default()))?;
    eprintln!("`shoal inbox` shows when it is held by peers or delivered");
    Ok(())
}

/// `shoal inbox`: letters sent and received, newest first (`--with PEER`: one conversation, oldest
/// first).
pub(crate) async fn inbox(c: &Client, with: Option<String>, limit: usize, json: bool) -> anyhow::Result<()> {
    let letters = match &with {
        Some(p) => c.letters_with(p, limit).await?,
        None => c.inbox(limit).await?,
    };
    if json {
        return super::print_line(&serde_json::to_string(&letters)?);
    }
    if letters.is_empty() {
        eprintln!("no letters yet");
    }
    for m in &letters {
        let dir = if m.mine { "to" } else { "from" };
        super::print_line(&format!("{dir} {:<20} {}", m.conversation, line(m)))?;
    }
    Ok(())
}

/// `shoal topics [join NAME | leave NAME]`.
pub(crate) async fn topics(c: &Client, action: Option<TopicsAction>, json: bool) -> anyhow::Result<()> {
    match action {
        Some(TopicsAction::Join { name, key, private }) => {
            let t = match private {
                true => c.create_private_topic(&name).await?,
                false => c.join_topic(&name, key.as_deref()).await?,
            };
            if json {
                return super::print_line(&serde_json::to_string(&t)?);
            }
            super::print_line(&format!("following {} (id {}), {} peers follow it here", t.name, t.id, t.peers))?;
            match (&t.key, private) {
                (Some(k), true) => super::print_line(&format!(
                    "private: only members read it. Give members (and only them) this command:\n  \
                     shoal topics join {} --key {k}",
                    shell_word(&t.name)
                )),
                _ => Ok(()),
            }
        }
        Some(TopicsAction::Leave { name }) => {
            let d = c.leave_topic(&name).await?;
            if json {
                return super::print_line(&serde_json::to_string(&d)?);
            }
            if !d.done {
                bail!("not following {name:?} (`shoal topics` lists the topics followed)");
            }
            super::print_line(&format!("left {name} (its history stays)"))
        }
        None => {
            let all = c.topics().await?;
            if json {
                return super::print_line(&serde_json::to_string(&all)?);
            }
            if all.is_empty() {
                eprintln!("no topics: `shoal chat NAME` or `shoal topics join NAME` follows one");
            }
            for t in all {
                let private = if t.private { " (private)" } else { "" };
                super::print_line(&format!("{}{private}: {} posts, {} peers", t.name, t.posts, t.peers))?;
            }
            Ok(())
        }
    }
}

/// `shoal contact add NAME PEER | rm NAME | ls`.
pub(crate) async fn contact(c: &Client, action: ContactAction, json: bool) -> anyhow::Result<()> {
    match action {
        ContactAction::Add { name, peer } => {
            let added = c.add_contact(&name, &peer).await?;
            if json {
                return super::print_line(&serde_json::to_string(&added)?);
            }
            super::print_line(&format!("{} is {}", added.name, added.peer))
        }
        ContactAction::Rm { name } => {
            let d = c.remove_contact(&name).await?;
            if json {
                return super::print_line(&serde_json::to_string(&d)?);
            }
            if !d.done {
                bail!("no contact named {name:?} (`shoal contact ls` lists them)");
            }
            super::print_line(&format!("forgot {name}"))
        }
        ContactAction::Ls => {
            let all = c.contacts().await?;
            if json {
                return super::print_line(&serde_json::to_string(&all)?);
            }
            for k in all {
                super::print_line(&format!("{:<20} {}", k.name, k.peer))?;
            }
            Ok(())
        }
    }
}

/// `shoal export CONVERSATION`: a topic's posts (a topic followed, by name or id) or the letters with a
/// peer (its id or a contact's name), oldest first, as one JSON array.
pub(crate) async fn export(c: &Client, conversation: &str) -> anyhow::Result<()> {
    let followed = c.topics().await?.into_iter().any(|t| t.name == conversation.trim() || t.id == conversation);
    let mut all: Vec<MessageView> = Vec::new();
    if followed {
        let mut after: Option<String> = None;
        loop {
            let page = c.topic_messages(conversation, after.as_deref(), 1000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            all.extend(page);
        }
    } else {
        all = c
            .letters_with(conversation, 1000)
            .await
            .with_context(|| format!("{conversation:?} is not a topic followed here, nor a peer id or contact name"))?;
    }
    super::print_line(&serde_json::to_string_pretty(&all)?)
}

/// `word` as one shell word: as it is when it is plain, else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:@".contains(c));
    if plain { word.to_string() } else { format!("'{}'", word.replace('\'', r"'\''")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_from_peers_are_shown_not_obeyed() {
        assert_eq!(printable("hi\u{1b}[2Jthere\nnext\tcol"), "hi\\u{1b}[2Jthere\nnext\tcol");
        assert_eq!(clock(3_723_000), "01:02:03");
    }

    #[test]
    fn a_name_in_a_printed_command_stays_one_word() {
        assert_eq!(shell_word("crew"), "crew");
        assert_eq!(shell_word("our crew"), "'our crew'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word("$(rm -rf ~)"), "'$(rm -rf ~)'");
    }
}
