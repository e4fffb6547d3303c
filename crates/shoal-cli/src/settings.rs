//! The effective configuration: each value from a flag, else a `SHOAL_*` environment variable, else
//! `<home>/config.toml`, else the default, remembering which (`shoal config` shows it).
//!
//! `config.toml` keys (all optional):
//!
//! ```toml
//! listen = ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"]
//! bootstrap = ["/ip4/192.168.1.20/tcp/4001/p2p/12D3KooW..."]
//! mdns = true
//! upload_limit = "10MB"            # per second, all peers together
//! upload_limit_per_peer = "2MB"
//! download_limit = "50MB"
//! download_limit_per_peer = "10MB"
//! max_connections = 200
//! topology = "structured"          # pure | structured | hybrid | supernode
//! supernode_capable = true         # supernode: may this peer become one (say false behind a NAT)
//! direct_writes = true             # large pieces straight to disk (say false on a spinning disk)
//! recheck_on_finish = false        # hash a completed download again from the disk
//! index_servers = ["/ip4/192.168.1.2/tcp/4001/p2p/12D3KooW..."]   # hybrid: servers to register with
//! api_listen = "127.0.0.1:5150"     # another machine's reach needs api_allow_remote = true
//! api_allow_remote = false
//! api_base_path = "/shoal"         # a reverse proxy forwards /shoal/... unchanged
//! api_key = "..."                  # persistent key for remote tools, >= 32 characters (never printed)
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::{Deserialize, Serialize};

use crate::cli::Args;

/// Where a value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Source {
    Flag,
    Env,
    File,
    Default,
}

/// A value and where it came from.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Setting<T> {
    pub(crate) value: T,
    pub(crate) source: Source,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<Vec<String>>,
    bootstrap: Option<Vec<String>>,
    mdns: Option<bool>,
    upload_limit: Option<String>,
    upload_limit_per_peer: Option<String>,
    download_limit: Option<String>,
    download_limit_per_peer: Option<String>,
    max_connections: Option<u32>,
    topology: Option<String>,
    index_servers: Option<Vec<String>>,
    supernode_capable: Option<bool>,
    direct_writes: Option<bool>,
    recheck_on_finish: Option<bool>,
    api_listen: Option<String>,
    api_allow_remote: Option<bool>,
    api_base_path: Option<String>,
    api_key: Option<String>,
}

/// Every setting, resolved.
#[derive(Debug, Serialize)]
pub(crate) struct Settings {
    pub(crate) home: Setting<PathBuf>,
    pub(crate) config_file: PathBuf,
    pub(crate) listen: Setting<Vec<String>>,
    pub(crate) bootstrap: Setting<Vec<String>>,
    pub(crate) mdns: Setting<bool>,
    pub(crate) upload_limit: Setting<Option<String>>,
    pub(crate) upload_limit_per_peer: Setting<Option<String>>,
    pub(crate) download_limit: Setting<Option<String>>,
    pub(crate) download_limit_per_peer: Setting<Option<String>>,
    pub(crate) max_connections: Setting<Option<u32>>,
    pub(crate) topology: Setting<Option<String>>,
    pub(crate) index_servers: Setting<Vec<String>>,
    pub(crate) supernode_capable: Setting<bool>,
    pub(crate) direct_writes: Setting<bool>,
    pub(crate) recheck_on_finish: Setting<bool>,
    pub(crate) api_listen: Setting<String>,
    pub(crate) api_allow_remote: Setting<bool>,
    pub(crate) api_base_path: Setting<Option<String>>,
    /// Never printed: `shoal config` says only whether it is set.
    #[serde(serialize_with = "set_or_not")]
    pub(crate) api_key: Setting<Option<String>>,
}

fn set_or_not<S: serde::Serializer>(s: &Setting<Option<String>>, ser: S) -> Result<S::Ok, S::Error> {
    Setting { value: s.value.as_ref().map(|_| "(set)"), source: s.source }.serialize(ser)
}

fn source_of(m: &ArgMatches, id: &str) -> Option<Source> {
    // Global flags are recorded where they were written: on the top level or on the subcommand.
    // (`value_source` panics on an id a command does not define, hence `try_contains_id` first.)
    let here = |m: &ArgMatches| if m.try_contains_id(id).is_ok() { m.value_source(id) } else { None };
    let src = here(m).or_else(|| m.subcommand().and_then(|(_, sub)| here(sub)));
    match src {
        Some(ValueSource::CommandLine) => Some(Source::Flag),
        Some(ValueSource::EnvVariable) => Some(Source::Env),
        _ => None,
    }
}

fn pick<T>(m: &ArgMatches, id: &str, given: Option<T>, file: Option<T>, default: T) -> Setting<T> {
    match (given, source_of(m, id)) {
        (Some(value), Some(source)) => Setting { value, source },
        _ => match file {
            Some(value) => Setting { value, source: Source::File },
            None => Setting { value: default, source: Source::Default },
        },
    }
}

fn some_if_nonempty(v: &[String]) -> Option<Vec<String>> {
    (!v.is_empty()).then(|| v.to_vec())
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

impl Settings {
    pub(crate) fn resolve(args: &Args, m: &ArgMatches) -> anyhow::Result<Self> {
        let home = match &args.home {
            Some(h) => Setting { value: h.clone(), source: source_of(m, "home").unwrap_or(Source::Flag) },
            None => Setting { value: shoal_node::config::default_home()?, source: Source::Default },
        };
        let config_file = home.value.join("config.toml");
        let f = read_file(&config_file)?;
        let default_listen = if args.loopback {
            vec!["/ip4/127.0.0.1/tcp/0".to_string()]
        } else {
            vec!["/ip4/0.0.0.0/tcp/0".to_string(), "/ip4/0.0.0.0/udp/0/quic-v1".to_string()]
        };
        // `--loopback` is a promise to stay on this machine: config.toml cannot turn it into a LAN peer.
        let (file_listen, file_mdns) = if args.loopback { (None, None) } else { (f.listen, f.mdns) };
        let s = Self {
            config_file,
            listen: pick(m, "listen", some_if_nonempty(&args.listen), file_listen, default_listen),
            bootstrap: pick(m, "bootstrap", some_if_nonempty(&args.bootstrap), f.bootstrap, Vec::new()),
            mdns: pick(m, "mdns", args.mdns, file_mdns, !args.loopback),
            upload_limit: pick(m, "upload_limit", args.upload_limit.clone().map(Some), f.upload_limit.map(Some), None),
            upload_limit_per_peer: pick(
                m,
                "upload_limit_per_peer",
                args.upload_limit_per_peer.clone().map(Some),
                f.upload_limit_per_peer.map(Some),
                None,
            ),
            download_limit: pick(
                m,
                "download_limit",
                args.download_limit.clone().map(Some),
                f.download_limit.map(Some),
                None,
            ),
            download_limit_per_peer: pick(
                m,
                "download_limit_per_peer",
                args.download_limit_per_peer.clone().map(Some),
                f.download_limit_per_peer.map(Some),
                None,
            ),
            max_connections: pick(
                m,
                "max_connections",
                args.max_connections.map(Some),
                f.max_connections.map(Some),
                None,
            ),
            topology: pick(m, "topology", args.topology.clone().map(Some), f.topology.map(Some), None),
            index_servers: pick(m, "index_servers", some_if_nonempty(&args.index_servers), f.index_servers, Vec::new()),
            supernode_capable: pick(m, "supernode_capable", args.supernode_capable, f.supernode_capable, true),
            direct_writes: pick(m, "direct_writes", args.direct_writes, f.direct_writes, true),
            recheck_on_finish: pick(m, "recheck_on_finish", args.recheck_on_finish, f.recheck_on_finish, false),
            api_listen: pick(m, "api_listen", args.api_listen.clone(), f.api_listen, "127.0.0.1:0".to_string()),
            api_allow_remote: pick(m, "api_allow_remote", args.api_allow_remote, f.api_allow_remote, false),
            api_base_path: pick(
                m,
                "api_base_path",
                args.api_base_path.clone().map(Some),
                f.api_base_path.map(Some),
                None,
            ),
            api_key: pick(m, "api_key", args.api_key.clone().map(Some), f.api_key.map(Some), None),
            home,
        };
        if let Some(t) = &s.topology.value {
            t.parse::<shoal_node::config::Topology>().map_err(anyhow::Error::msg).context("topology")?;
        }
        Ok(s)
    }

    /// `shoal config`: one line per key, or JSON.
    pub(crate) fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            return crate::commands::print_line(&serde_json::to_string(self)?);
        }
        fn src(s: Source) -> &'static str {
            match s {
                Source::Flag => "flag",
                Source::Env => "env",
                Source::File => "config.toml",
                Source::Default => "default",
            }
        }
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
        let rows: Vec<(&str, String, Source)> = vec![
            ("home", self.home.value.display().to_string(), self.home.source),
            ("listen", self.listen.value.join(","), self.listen.source),
            ("bootstrap", self.bootstrap.value.join(","), self.bootstrap.source),
            ("mdns", self.mdns.value.to_string(), self.mdns.source),
            ("upload_limit", opt(&self.upload_limit.value), self.upload_limit.source),
            ("upload_limit_per_peer", opt(&self.upload_limit_per_peer.value), self.upload_limit_per_peer.source),
            ("download_limit", opt(&self.download_limit.value), self.download_limit.source),
            ("download_limit_per_peer", opt(&self.download_limit_per_peer.value), self.download_limit_per_peer.source),
            (
                "max_connections",
                self.max_connections.value.map_or("none".into(), |n| n.to_string()),
                self.max_connections.source,
            ),
            ("topology", opt(&self.topology.value), self.topology.source),
            ("index_servers", self.index_servers.value.join(","), self.index_servers.source),
            ("supernode_capable", self.supernode_capable.value.to_string(), self.supernode_capable.source),
            ("direct_writes", self.direct_writes.value.to_string(), self.direct_writes.source),
            ("recheck_on_finish", self.recheck_on_finish.value.to_string(), self.recheck_on_finish.source),
            ("api_listen", self.api_listen.value.clone(), self.api_listen.source),
            ("api_allow_remote", self.api_allow_remote.value.to_string(), self.api_allow_remote.source),
            ("api_base_path", opt(&self.api_base_path.value), self.api_base_path.source),
            ("api_key", self.api_key.value.as_ref().map_or("none", |_| "(set)").to_string(), self.api_key.source),
        ];
        crate::commands::print_line(&format!("# config file: {}", self.config_file.display()))?;
        for (k, v, s) in rows {
            crate::commands::print_line(&format!("{k} = {v}    ({})", src(s)))?;
        }
        Ok(())
    }
}
