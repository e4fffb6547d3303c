//! The capped uplink: when a global upload cap makes answers wait, they go out one at a time in the order
//! [`UploadQueue`] picks (the piece sent the fewest times first), so that a seed puts every piece into the
//! swarm once before it sends any twice.
//!
//! Each stream's writer asks for a turn with the answer at its head (answers on one stream stay in request
//! order), waits for the global token bucket while it holds the turn, and gives the turn back before it
//! writes: a peer that reads slowly holds up its own stream, never the uplink.

use std::sync::{Arc, Mutex};

use shoal_proto::transfer::UploadQueue;
use tokio::sync::oneshot;

/// A piece: blob id and first chunk.
pub(crate) type PieceKey = ([u8; 32], u64);

#[derive(Default)]
struct State {
    queue: UploadQueue<PieceKey, oneshot::Sender<()>>,
    /// A writer holds the turn.
    busy: bool,
}

/// The uplink's turn-taking (see the module docs).
#[derive(Default)]
pub(crate) struct Uplink {
    state: Mutex<State>,
}

/// The right to pace the next answer through the global cap; the next writer gets it when this drops.
pub(crate) struct Turn {
    uplink: Arc<Uplink>,
}

impl Uplink {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        shoal_store::lock(&self.state)
    }

    /// Waits for the turn to send `key`.
    pub(crate) async fn turn(self: &Arc<Self>, key: PieceKey) -> Turn {
        let (tx, rx) = oneshot::channel();
        {
            let mut s = self.lock();
            s.queue.push(key, tx);
            if !s.busy {
                // Nobody holds the turn, so nothing else waits: what comes out is ours.
                if let Some((_, tx)) = s.queue.pop() {
                    s.busy = true;
                    let _ = tx.send(());
                }
            }
        }
        // The sender is used (our turn) or dropped (the uplink is gone): either way we may go on.
        let _ = rx.await;
        Turn { uplink: self.clone() }
    }

    /// Hands the turn to the next waiting writer whose task is still there.
    fn next(&self) {
        let mut s = self.lock();
        while let Some((_, tx)) = s.queue.pop() {
            if tx.send(()).is_ok() {
                return;
            }
        }
        s.busy = false;
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.uplink.next();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waiting_writers_go_least_sent_first_and_a_cancelled_one_is_skipped() {
        let up = Arc::new(Uplink::default());
        let (a, b) = (([1; 32], 0), ([1; 32], 16));
        // A turn is taken for piece a and held; then writers for a, a (gone before its turn), and b wait.
        let first = up.turn(a).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let spawn = |key: PieceKey, name: &'static str| {
            let (up, order) = (up.clone(), order.clone());
            tokio::spawn(async move {
                let _t = up.turn(key).await;
                order.lock().unwrap().push(name);
            })
        };
        let again = spawn(a, "a again");
        tokio::time::sleep(Duration::from_millis(1)).await;
        let gone = spawn(a, "gone");
        tokio::time::sleep(Duration::from_millis(1)).await;
        let other = spawn(b, "b");
        tokio::time::sleep(Duration::from_millis(1)).await;
        gone.abort();
        drop(first);
        again.await.unwrap();
        other.await.unwrap();
        assert_eq!(*order.lock().unwrap(), vec!["b", "a again"], "b was never sent, a once");
        // Nobody waits: the next turn is immediate.
        let t = tokio::time::timeout(Duration::from_secs(1), up.turn(b)).await;
        assert!(t.is_ok());
    }
}
