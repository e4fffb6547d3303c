//! Placing copies of letters with holders, grouped by recipient.
//!
//! The outbox asks for copies letter by letter ([`Action::Place`]); a burst of letters to one absent
//! peer (a sender catching up, a script) would then cost one holder lookup and one stream per letter and
//! holder, and run into the holders' per-peer stream limit. Here the asks of one tick are grouped by
//! recipient: one lookup, then holders in rounds as wide as the most copies any letter still needs, each
//! round's holders asked in parallel, each holder on one stream carrying all the letters it is to keep
//! (sent back to back; it answers each with `Taken` or `Refused`). A letter that is being placed is not
//! placed again until its round ends: the outbox asks again every direct timeout, and a slow holder would
//! otherwise start a second round and leave more copies than wanted.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use libp2p::PeerId;
use shoal_proto::messaging::AuthorKey;
use shoal_proto::messaging::MsgId;
use shoal_proto::messaging::delivery::Action;
use shoal_proto::messaging::exchange::Frame;

use super::service::Shared;
use super::streams::{ExchangeFailed, Link};
use super::{holders, ids};

/// Letters handed to one holder on one stream, at most (the holder's own bound is the same).
pub(crate) const MAX_HOLDS_PER_STREAM: usize = 256;

/// One letter's ask: how many more copies, and who has one already.
struct Want {
    id: MsgId,
    more: usize,
    besides: HashSet<PeerId>,
}

/// Starts placing what the outbox asked for in one tick: one task per recipient.
pub(crate) fn start(shared: &Arc<Shared>, asks: Vec<Action<PeerId>>) {
    let mut by_recipient: HashMap<AuthorKey, Vec<Want>> = HashMap::new();
    {
        let mut st = shared.state();
        for a in asks {
            let Action::Place { id, to, more, besides } = a else { continue };
            if st.placing.insert(id) {
                by_recipient.entry(to).or_default().push(Want { id, more, besides: besides.into_iter().collect() });
            }
        }
    }
    for (to, wants) in by_recipient {
        let s = shared.clone();
        shared.tasks.spawn(async move {
            let ids: Vec<MsgId> = wants.iter().map(|w| w.id).collect();
            place_for(&s, to, wants).await;
            let mut st = s.state();
            for id in ids {
                st.placing.remove(&id);
            }
        });
    }
}

async fn place_for(shared: &Arc<Shared>, to: AuthorKey, mut wants: Vec<Want>) {
    let Some(recipient) = ids::peer_of(&to) else { return };
    let candidates = holders::candidates(shared, recipient).await;
    let width = wants.iter().map(|w| w.more).max().unwrap_or(0).max(1);
    let at: HashMap<MsgId, usize> = wants.iter().enumerate().map(|(i, w)| (w.id, i)).collect();
    for round in candidates.chunks(width) {
        let mut per_holder: HashMap<PeerId, Vec<MsgId>> = HashMap::new();
        for w in wants.iter().filter(|w| w.more > 0) {
            for h in round.iter().filter(|h| !w.besides.contains(h)).take(w.more) {
                per_holder.entry(*h).or_default().push(w.id);
            }
        }
        if per_holder.is_empty() {
            if wants.iter().all(|w| w.more == 0) {
                return;
            }
            continue;
        }
        let answers = futures::future::join_all(per_holder.into_iter().map(|(h, ids)| hand(shared, h, ids))).await;
        for (holder, taken) in answers {
            for id in taken {
                if let Some(w) = at.get(&id).and_then(|&i| wants.get_mut(i)) {
                    w.more = w.more.saturating_sub(1);
                    w.besides.insert(holder);
                }
                shared.count(|c| c.letters_placed += 1);
                let action = shared.state().outbox.on_held(&id, holder);
                if let Some(Action::Status { id, status }) = action {
                    super::letters::set_status(shared, id, status).await;
                }
            }
        }
    }
}

/// Waits before each try to hand a chunk of letters to a holder that dropped the stream.
const HAND_RETRIES: [std::time::Duration; 3] =
    [std::time::Duration::ZERO, std::time::Duration::from_millis(250), std::time::Duration::from_millis(750)];

/// Hands letters to one holder on one stream; returns the holder and the letters it took.
async fn hand(shared: &Shared, holder: PeerId, letters: Vec<MsgId>) -> (PeerId, Vec<MsgId>) {
    let mut taken = Vec::new();
    'chunks: for chunk in letters.chunks(MAX_HOLDS_PER_STREAM) {
        let before = taken.len();
        for wait in HAND_RETRIES {
            tokio::time::sleep(wait).await;
            match hand_chunk(shared, holder, chunk, &mut taken).await {
                Ok(()) => continue 'chunks,
                // Dropped before it took any: again (a busy peer drops streams, see `ExchangeFailed`).
                Err(ExchangeFailed::Dropped(_)) if taken.len() == before => {}
                Err(e) => {
                    tracing::debug!(%holder, error = %e, "cannot place letters");
                    break 'chunks;
                }
            }
        }
        tracing::debug!(%holder, "cannot place letters: the holder dropped every stream");
        break;
    }
    (holder, taken)
}

async fn hand_chunk(
    shared: &Shared,
    holder: PeerId,
    letters: &[MsgId],
    taken: &mut Vec<MsgId>,
) -> Result<(), ExchangeFailed> {
    let sealed: Vec<_> = {
        let st = shared.state();
        letters.iter().filter_map(|id| st.outgoing.get(id).map(|o| o.sealed.clone())).collect()
    };
    if sealed.is_empty() {
        return Ok(());
    }
    let mut link = Link::open(shared, holder).await?;
    // Answers are a few dozen bytes each: the holder never blocks writing them while we still send.
    for s in &sealed {
        link.send(&Frame::Hold(s.clone())).await?;
    }
    link.send(&Frame::Done).await?;
    for _ in 0..sealed.len() {
        match link.expect().await? {
            Frame::Taken { id } if letters.contains(&id) => taken.push(id),
            Frame::Refused { why, .. } => tracing::debug!(%holder, why, "holder refused a letter"),
            _ => return Err(ExchangeFailed::Unexpected("answered a hold with something else")),
        }
    }
    link.close().await;
    Ok(())
}
