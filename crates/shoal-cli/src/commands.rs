//! The verbs. `run` turns global flags into a [`NodeConfig`] and dispatches.

mod daemon;
mod demo;
mod get;
mod messages;
mod remote;
mod search;
mod share;

use std::time::Duration;

use anyhow::{Context, bail};
use shoal_net::{Multiaddr, NetConfig};
use shoal_node::NodeConfig;
use shoal_node::config::{DownloadTuning, Topology};

use crate::cli::{Args, Command};
use crate::settings::{Setting, Settings};

pub(crate) async fn run(args: Args, matches: clap::ArgMatches) -> anyhow::Result<()> {
    if let Command::Completions { shell } = args.command {
        let mut cmd = <Args as clap::CommandFactory>::command();
        clap_complete::generate(shell, &mut cmd, "shoal", &mut std::io::stdout());
        return Ok(());
    }
    let settings = Settings::resolve(&args, &matches)?;
    if let Command::Config { json } = args.command {
        return settings.print(json);
    }
    let config = node_config(&args, &settings)?;
    let api_listen: std::net::SocketAddr =
        settings.api_listen.value.parse().with_context(|| {
            format!("api_listen {:?} is not an address like 127.0.0.1:5150", settings.api_listen.value)
        })?;
    let api = shoal_api::daemon::ApiOptions {
        listen: api_listen,
        allow_remote: settings.api_allow_remote.value,
        key: settings.api_key.value.clone(),
        base_path: match &settings.api_base_path.value {
            Some(b) => shoal_api::server::base::BasePath::parse(b)?,
            None => None,
        },
    };
    match args.command {
        Command::Share { path, json } => match remote::daemon(&config.home).await? {
            Some(client) => remote::share(&client, &path, json).await,
            None => share::run(config, &path, json).await,
        },
        Command::Get { what, output, json, timeout } => match remote::daemon(&config.home).await? {
            Some(client) => remote::get(&client, &what, output, json).await,
            None => {
                let tuning = config.download.clone().with_stall_timeout(Duration::from_secs(timeout.max(1)));
                get::run(config.with_download(tuning), &what, output, json).await
            }
        },
        Command::Search { words, limit, timeout, min_size, max_size, ext, json } => {
            let text = words.join(" ");
            let size = |v: &Option<String>, what: &str| {
                v.as_deref().map(parse_rate).transpose().with_context(|| format!("--{what}"))
            };
            let (min_size, max_size) = (size(&min_size, "min-size")?, size(&max_size, "max-size")?);
            if shoal_proto::search::keywords::words(&text).is_empty() {
                bail!("give at least one word to search for (letters or digits)");
            }
            if !(1..=300).contains(&timeout) {
                bail!("--timeout must be between 1 and 300 seconds");
            }
            if let Some(e) = &ext
                && (e.is_empty() || e.len() > 16 || !e.chars().all(|c| c.is_ascii_alphanumeric()))
            {
                bail!("--ext {e:?}: give the extension without the dot, letters and digits only (e.g. zip)");
            }
            match remote::daemon(&config.home).await? {
                Some(client) => {
                    let body = shoal_api::types::SearchBody {
                        text: Some(text),
                        limit: Some(limit),
                        timeout_secs: Some(timeout),
                        min_size,
                        max_size,
                        ext,
                        ..Default::default()
                    };
                    search::remote(&client, search::Ask { body, timeout: Duration::from_secs(timeout), json }).await
                }
                None => {
                    let query = shoal_proto::search::Query {
                        want: shoal_proto::search::Want::Words(text),
                        filters: shoal_proto::search::Filters { min_size, max_size, ext },
                    };
                    let req =
                        shoal_node::SearchRequest { query, limit: limit.max(1), timeout: Duration::from_secs(timeout) };
                    search::one_shot(config, req, json).await
                }
            }
        }
        Command::Daemon { json, .. } => daemon::run(config, api, json).await,
        Command::IndexServer { json, .. } => {
            if config.topology != Topology::Hybrid && settings.topology.value.is_some() {
                bail!("an index server belongs to the hybrid topology, but topology is set to {}", config.topology);
            }
            let search = config.search.clone().with_index_server(true);
            daemon::run(config.with_topology(Topology::Hybrid).with_search(search), api, json).await
        }
        Command::Config { .. } => Ok(()),
        Command::Status { json } => remote::status(&remote::required(&config.home).await?, json).await,
        Command::Ls { json } => remote::ls(&remote::required(&config.home).await?, json).await,
        Command::Peers { json } => remote::peers(&remote::required(&config.home).await?, json).await,
        Command::Stop { json } => remote::stop(&remote::required(&config.home).await?, json).await,
        Command::Ui { print, json, via } => {
            remote::ui(&remote::required(&config.home).await?, print || json, json, via.as_deref()).await
        }
        Command::Unshare { id, json } => {
            let id: shoal_store::ContentId =
                id.trim().parse().map_err(|e| anyhow::anyhow!("{id:?} is not a content id: {e}"))?;
            match remote::daemon(&config.home).await? {
                Some(client) => share::unshare_remote(&client, &id, json).await,
                None => share::unshare_here(&config.home, &id, json),
            }
        }
        Command::Doctor { json } => share::doctor(&config.home, json),
        Command::Completions { .. } => Ok(()),
        Command::Chat { topic, send, history, json } => {
            messages::chat(&remote::required(&config.home).await?, &topic, send, history, json).await
        }
        Command::Msg { peer, text, json } => {
            messages::msg(&remote::required(&config.home).await?, &peer, &text, json).await
        }
        Command::Inbox { with, limit, json } => {
            messages::inbox(&remote::required(&config.home).await?, with, limit, json).await
        }
        Command::Topics { action, json } => {
            messages::topics(&remote::required(&config.home).await?, action, json).await
        }
        Command::Contact { action, json } => {
            messages::contact(&remote::required(&config.home).await?, action, json).await
        }
        Command::Export { conversation } => {
            messages::export(&remote::required(&config.home).await?, &conversation).await
        }
        Command::Demo { sources, size_mib, json, ui } => demo::run(sources, size_mib, json, ui).await,
    }
}

fn parse_addrs(list: &[String], what: &str) -> anyhow::Result<Vec<Multiaddr>> {
    list.iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim().parse::<Multiaddr>().with_context(|| {
                format!("{what} {s:?} is not a multiaddr (expected something like /ip4/127.0.0.1/tcp/4001)")
            })
        })
        .collect()
}

fn node_config(args: &Args, s: &Settings) -> anyhow::Result<NodeConfig> {
    let home = s.home.value.clone();
    let mut net = if args.loopback { NetConfig::loopback() } else { NetConfig::default() };
    net = net
        .with_mdns(s.mdns.value)
        .with_listen(parse_addrs(&s.listen.value, "listen")?)
        .with_bootstrap(parse_addrs(&s.bootstrap.value, "bootstrap")?)
        .with_max_connections(s.max_connections.value);
    let rate = |v: &Setting<Option<String>>, key: &str| {
        v.value.as_deref().map(parse_rate).transpose().with_context(|| format!("{key} (from {:?})", v.source))
    };
    let mut config = NodeConfig::new(home)
        .with_net(net)
        .with_upload_limit(rate(&s.upload_limit, "upload_limit")?)
        .with_limits(
            rate(&s.upload_limit_per_peer, "upload_limit_per_peer")?,
            rate(&s.download_limit, "download_limit")?,
            rate(&s.download_limit_per_peer, "download_limit_per_peer")?,
        )
        .with_download(
            DownloadTuning::default()
                .with_direct_writes(s.direct_writes.value)
                .with_recheck_on_finish(s.recheck_on_finish.value),
        );
    if let Some(t) = s.topology.value.as_deref() {
        config.topology = t.parse().map_err(anyhow::Error::msg)?;
    }
    let servers = parse_addrs(&s.index_servers.value, "index server")?;
    let mut search = config.search.clone().with_index_servers(servers);
    search.supernode_capable = s.supernode_capable.value;
    config.search = search;
    config.corrupt_uploads = args.test_corrupt_uploads;
    Ok(config)
}

/// Parses a byte rate: `1048576`, `10MB`, `512KiB`, `1.5MiB/s` (decimal k/M/G, binary Ki/Mi/Gi).
pub(crate) fn parse_rate(s: &str) -> anyhow::Result<u64> {
    let t = s.trim().trim_end_matches("/s");
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().with_context(|| format!("{s:?} is not a rate (try 10MB or 512KiB)"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "ki" | "kib" => 1024.0,
        "mi" | "mib" => 1024.0 * 1024.0,
        "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        other => bail!("unknown unit {other:?} in rate {s:?} (use B, KB, MB, GB, KiB, MiB or GiB)"),
    };
    let v = n * mult;
    if !(1.0..1e15).contains(&v) {
        bail!("rate {s:?} is out of range");
    }
    Ok(v as u64)
}

/// Ctrl-C and SIGTERM handlers, installed when this is created (before the caller tells anyone it is up,
/// so that a signal right after start still takes the clean path).
pub(crate) struct Stopper {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Stopper {
    pub(crate) fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?,
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        })
    }

    /// Waits for Ctrl-C or SIGTERM.
    pub(crate) async fn wait(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// Writes one line to stdout; a closed pipe is not an error (like `head` closing early).
pub(crate) fn print_line(line: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}").and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing to stdout"),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_rate;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_rate("512KiB").unwrap(), 512 * 1024);
        assert_eq!(parse_rate("1.5MiB/s").unwrap(), 1_572_864);
        assert_eq!(parse_rate("4096").unwrap(), 4096);
        for bad in ["", "fast", "10XB", "0", "-1MB"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
