//! `shoal search WORDS`: asks the network (through the daemon if one runs, else as a one-shot peer) and
//! prints hits as they arrive: one line per result on stdout (`id  size  name`), more peers having the same
//! result and the closing figures on stderr. `--json` prints the events themselves, one JSON object a line.
//! Like `grep`, it exits 1 when nothing was found (0 with at least one hit, 2 and up for errors).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use shoal_api::client::Client;
use shoal_api::types::{SearchBody, SearchLine};
use shoal_node::config::Topology;
use shoal_node::{ContentId, Node, NodeConfig, SearchEvent, SearchRequest};

/// What the user asked for, as the API takes it.
pub(crate) struct Ask {
    pub(crate) body: SearchBody,
    pub(crate) timeout: Duration,
    pub(crate) json: bool,
}

#[derive(Default)]
struct Printer {
    json: bool,
    /// Peers per result id.
    peers: HashMap<ContentId, usize>,
    pairs: HashSet<(ContentId, String)>,
}

impl Printer {
    /// Exit status 1 when nothing was found, as `grep` does (scripts tell "no hit" from "found").
    fn exit_if_nothing_found(&self) {
        if self.peers.is_empty() {
            std::process::exit(1);
        }
    }

    /// Prints one event (`raw` is its JSON, for `--json`); false after the last.
    fn on(&mut self, ev: &SearchEvent, raw: &str) -> anyhow::Result<bool> {
        match ev {
            SearchEvent::Hit(h) => {
                if !self.pairs.insert((h.id, h.peer.to_string())) {
                    return Ok(true);
                }
                let n = self.peers.entry(h.id).or_default();
                *n += 1;
                if self.json {
                    super::print_line(raw)?;
                } else if *n == 1 {
                    let size = indicatif::HumanBytes(h.size);
                    let folder = if h.collection { "/" } else { "" };
                    super::print_line(&format!("{}  {:>10}  {}{folder}", h.id, size.to_string(), h.name))?;
                } else {
                    eprintln!("  {} peers have {}", n, h.name);
                }
                Ok(true)
            }
            SearchEvent::Done(st) => {
                if self.json {
                    super::print_line(raw)?;
                }
                let first = st
                    .first_hit
                    .map_or("no hit".to_string(), |d| format!("first hit after {:.1} ms", d.as_secs_f64() * 1000.0));
                eprintln!(
                    "{} result{} from {} peer{} in {:.0} ms; {first}; {} query messages sent from this peer",
                    st.hits,
                    if st.hits == 1 { "" } else { "s" },
                    st.responders,
                    if st.responders == 1 { "" } else { "s" },
                    st.elapsed.as_secs_f64() * 1000.0,
                    st.messages,
                );
                Ok(false)
            }
        }
    }
}

/// Through the running daemon.
pub(crate) async fn remote(c: &Client, ask: Ask) -> anyhow::Result<()> {
    let mut p = Printer { json: ask.json, ..Printer::default() };
    let mut err = None;
    c.search(&ask.body, ask.timeout + Duration::from_secs(30), |line: SearchLine, raw: &str| {
        match p.on(&line.event, raw) {
            Ok(more) => more,
            Err(e) => {
                err = Some(e);
                false
            }
        }
    })
    .await?;
    err.map_or(Ok(()), Err)?;
    p.exit_if_nothing_found();
    Ok(())
}

/// As a one-shot peer: start, give the network a moment to link us in, search, stop.
pub(crate) async fn one_shot(config: NodeConfig, req: SearchRequest, json: bool) -> anyhow::Result<()> {
    let topology = config.topology;
    let node = Node::start(config).await.context("starting the peer")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let linked = match topology {
            Topology::Pure => node.search_counters().neighbours > 0,
            _ => !node.network().peers().await.unwrap_or_default().is_empty(),
        };
        if linked {
            break;
        }
        if Instant::now() > deadline {
            eprintln!("no peer reached in 5 s: searching anyway (give --bootstrap, or start a daemon)");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut stream = node.search(req).await?;
    let mut p = Printer { json, ..Printer::default() };
    while let Some(ev) = stream.next().await {
        if !p.on(&ev, &serde_json::to_string(&ev)?)? {
            break;
        }
    }
    node.shutdown().await;
    p.exit_if_nothing_found();
    Ok(())
}
