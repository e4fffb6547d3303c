//! `/shoal/search/1` streams: one outbound stream per peer, written by its own task; inbound streams each
//! read by their own task. Messages in and out go through bounded channels, so the driver never waits on a
//! peer: an outbound queue that is full drops the message (search traffic is best effort), and an inbound
//! reader waits for the driver, which slows that one peer down.

use std::collections::HashMap;
use std::time::Duration;

use futures::AsyncWriteExt;
use libp2p::PeerId;
use shoal_net::Control;
use shoal_proto::search::SearchMsg;
use shoal_proto::search::messages::MAX_FRAME;
use tokio::sync::mpsc;

use crate::framing::{read_frame, write_frame};
use crate::service::Tasks;

/// Messages queued towards one peer before new ones are dropped.
const OUT_QUEUE: usize = 256;

/// What the links report to the driver.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    /// A valid message from a peer.
    Msg(PeerId, SearchMsg),
    /// The outbound stream to a peer failed or could not be opened.
    Closed(PeerId),
}

/// Outbound streams, by peer.
pub(crate) struct Links {
    control: Control,
    out: HashMap<PeerId, mpsc::Sender<SearchMsg>>,
    events: mpsc::Sender<LinkEvent>,
    tasks: Tasks,
    /// Messages dropped: a peer's queue was full, or no writer could run (the node was stopping).
    pub(crate) dropped: u64,
}

impl Links {
    pub(crate) fn new(control: Control, events: mpsc::Sender<LinkEvent>, tasks: Tasks) -> Self {
        Self { control, out: HashMap::new(), events, tasks, dropped: 0 }
    }

    /// Queues `msg` for `to`, opening a stream (and dialing) if there is none.
    ///
    /// A writer that has ended (its stream broke) is replaced once. If the new one has ended too before
    /// it got the message, writers cannot run now (the node is stopping: its tasks are dropped as they are
    /// spawned, or the network is gone and the stream fails at once) and the message is dropped. This
    /// retried without a bound before, by recursion, and overflowed the stack while a node stopped.
    pub(crate) fn send(&mut self, to: PeerId, msg: SearchMsg) {
        let mut msg = msg;
        for _ in 0..2 {
            let tx = self.out.entry(to).or_insert_with(|| {
                let (tx, rx) = mpsc::channel(OUT_QUEUE);
                self.tasks.spawn(write_loop(self.control.clone(), to, rx, self.events.clone()));
                tx
            });
            match tx.try_send(msg) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => break,
                Err(mpsc::error::TrySendError::Closed(m)) => {
                    self.out.remove(&to);
                    msg = m;
                }
            }
        }
        self.dropped += 1;
    }

    /// Forgets the stream to `peer` (it disconnected); its writer ends when its queue is dropped.
    pub(crate) fn forget(&mut self, peer: &PeerId) {
        self.out.remove(peer);
    }
}

async fn write_loop(
    mut control: Control,
    peer: PeerId,
    mut rx: mpsc::Receiver<SearchMsg>,
    events: mpsc::Sender<LinkEvent>,
) {
    let opened = tokio::time::timeout(Duration::from_secs(10), control.open_stream(peer, super::PROTOCOL)).await;
    let mut stream = match opened {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "cannot open a search stream");
            let _ = events.send(LinkEvent::Closed(peer)).await;
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "opening a search stream timed out");
            let _ = events.send(LinkEvent::Closed(peer)).await;
            return;
        }
    };
    while let Some(msg) = rx.recv().await {
        let r = async {
            write_frame(&mut stream, &msg, MAX_FRAME).await?;
            // Flush when the queue is empty: several queued messages go out in one write.
            if rx.is_empty() {
                stream.flush().await?;
            }
            Ok::<_, crate::framing::FrameError>(())
        };
        if let Err(e) = r.await {
            tracing::debug!(%peer, error = %e, "search stream closed");
            let _ = events.send(LinkEvent::Closed(peer)).await;
            return;
        }
    }
    let _ = stream.close().await;
}

/// Reads one inbound search stream until it ends or breaks framing.
pub(crate) async fn read_loop(peer: PeerId, mut stream: libp2p::Stream, events: mpsc::Sender<LinkEvent>) {
    loop {
        match read_frame::<SearchMsg, _>(&mut stream, MAX_FRAME).await {
            Ok(Some(msg)) => {
                if let Err(e) = msg.validate() {
                    tracing::debug!(%peer, error = %e, "dropping a search message over the limits");
                    continue;
                }
                if events.send(LinkEvent::Msg(peer, msg)).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                // Broken framing: we never try to resynchronise; the peer can open a new stream.
                tracing::debug!(%peer, error = %e, "closing a search stream");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_whose_writer_cannot_run_is_dropped_not_retried_forever() {
        let live = tokio::runtime::Runtime::new().unwrap();
        let key = libp2p::identity::Keypair::generate_ed25519();
        let config = shoal_net::NetConfig::loopback().with_dht(false);
        let net = live.block_on(shoal_net::Network::start(key, config)).unwrap();
        let (events, _events) = mpsc::channel(4);
        let mut links = Links::new(net.streams(), events, Tasks::default());
        // A runtime that has shut down drops every task spawned on it at once, as a stopping node does:
        // each new writer's queue is closed before the message can go in.
        let stopped = tokio::runtime::Runtime::new().unwrap();
        let handle = stopped.handle().clone();
        drop(stopped);
        let _inside = handle.enter();
        links.send(PeerId::random(), SearchMsg::Leave);
        assert_eq!(links.dropped, 1);
    }
}
