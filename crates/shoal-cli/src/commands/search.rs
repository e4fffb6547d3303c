//! `shoal search WORDS`: asks the network (through the daemon if one runs, else as a one-shot peer) and
//! prints hits as they arrive: one line per result on stdout (`id  size  name`), more peers having the same
//! result and the closing figures on stderr. `--json` prints the events themselves, one JSON object a line.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use shoal_api::client::Client;
use shoal_node::config::Topology;
use shoal_node::{Node, NodeConfig, SearchRequest};

/// What the user asked for, as the API takes it.
pub(crate) struct Ask {
    pub(crate) body: serde_json::Value,
    pub(crate) timeout: Duration,
    pub(crate) json: bool,
}

#[derive(Default)]
struct Printer {
    json: bool,
    /// Peers per result id.
    peers: HashMap<String, usize>,
    pairs: HashSet<(String, String)>,
}

impl Printer {
    /// Prints one event; false after the last.
    fn on(&mut self, v: &serde_json::Value) -> anyhow::Result<bool> {
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        match v["type"].as_str() {
            Some("hit") => {
                let (id, peer) = (s("id"), s("peer"));
                if !self.pairs.insert((id.clone(), peer)) {
                    return Ok(true);
                }
                let n = self.peers.entry(id.clone()).or_default();
                *n += 1;
                if self.json {
                    super::print_line(&v.to_string())?;
                } else if *n == 1 {
                    let size = indicatif::HumanBytes(v["size"].as_u64().unwrap_or(0));
                    let folder = if v["collection"].as_bool().unwrap_or(false) { "/" } else { "" };
                    super::print_line(&format!("{id}  {:>10}  {}{folder}", size.to_string(), s("name")))?;
                } else {
                    eprintln!("  {} peers have {}", n, s("name"));
                }
                Ok(true)
            }
            Some("done") => {
                if self.json {
                    super::print_line(&v.to_string())?;
                }
                let first =
                    v["first_hit_ms"].as_f64().map_or("no hit".to_string(), |ms| format!("first hit after {ms:.1} ms"));
                eprintln!(
                    "{} result{} from {} peer{} in {:.0} ms; {first}; {} query messages sent from this peer",
                    v["hits"],
                    if v["hits"] == 1 { "" } else { "s" },
                    v["responders"],
                    if v["responders"] == 1 { "" } else { "s" },
                    v["elapsed_ms"].as_f64().unwrap_or(0.0),
                    v["messages"],
                );
                Ok(false)
            }
            _ => Ok(true),
        }
    }
}

/// Through the running daemon.
pub(crate) async fn remote(c: &Client, ask: Ask) -> anyhow::Result<()> {
    let mut p = Printer { json: ask.json, ..Printer::default() };
    let mut err = None;
    c.post_lines("/api/v1/search", &ask.body, ask.timeout + Duration::from_secs(30), |v| match p.on(&v) {
        Ok(more) => more,
        Err(e) => {
            err = Some(e);
            false
        }
    })
    .await?;
    err.map_or(Ok(()), Err)
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
        if !p.on(&serde_json::to_value(&ev)?)? {
            break;
        }
    }
    node.shutdown().await;
    Ok(())
}
