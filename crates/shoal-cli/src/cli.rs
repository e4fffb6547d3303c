//! Command-line arguments. Every global flag can also come from a `SHOAL_*` environment variable.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Shoal: a peer-to-peer network. Every peer shares and fetches; files are verified piece by piece.
#[derive(Debug, Parser)]
#[command(name = "shoal", version, about, long_about = None)]
pub(crate) struct Args {
    /// Data directory (identity, catalog, outboards). Default: the platform data dir.
    #[arg(long, global = true, env = "SHOAL_HOME")]
    pub(crate) home: Option<PathBuf>,

    /// Address to listen on (repeatable). Default: all interfaces, TCP and QUIC, random ports.
    #[arg(long, global = true, env = "SHOAL_LISTEN", value_delimiter = ',')]
    pub(crate) listen: Vec<String>,

    /// Peer to connect to at start, as a multiaddr (repeatable), e.g. /ip4/10.0.0.5/tcp/4001/p2p/12D3...
    #[arg(long, global = true, env = "SHOAL_BOOTSTRAP", value_delimiter = ',')]
    pub(crate) bootstrap: Vec<String>,

    /// Find peers on the local network by multicast DNS (true/false; default true).
    #[arg(long, global = true, env = "SHOAL_MDNS", action = clap::ArgAction::Set)]
    pub(crate) mdns: Option<bool>,

    /// Listen on 127.0.0.1 only and turn mDNS off (tests, demos, trying things out on one machine).
    #[arg(long, global = true, env = "SHOAL_LOOPBACK")]
    pub(crate) loopback: bool,

    /// Cap on upload speed, e.g. 10MB, 512KiB, 1.5MiB (per second; all uploads together).
    #[arg(long, global = true, env = "SHOAL_UPLOAD_LIMIT")]
    pub(crate) upload_limit: Option<String>,

    /// Cap on upload speed towards any one peer.
    #[arg(long, global = true, env = "SHOAL_UPLOAD_LIMIT_PER_PEER")]
    pub(crate) upload_limit_per_peer: Option<String>,

    /// Cap on download speed, all downloads together, e.g. 10MB.
    #[arg(long, global = true, env = "SHOAL_DOWNLOAD_LIMIT")]
    pub(crate) download_limit: Option<String>,

    /// Cap on download speed from any one peer.
    #[arg(long, global = true, env = "SHOAL_DOWNLOAD_LIMIT_PER_PEER")]
    pub(crate) download_limit_per_peer: Option<String>,

    /// Most connections at once.
    #[arg(long, global = true, env = "SHOAL_MAX_CONNECTIONS")]
    pub(crate) max_connections: Option<u32>,

    /// Variant of the P2P model, the same for the whole network: pure (flooding), structured (DHT, the
    /// default), hybrid (index servers), supernode (elected supernodes index their leaves).
    #[arg(long, global = true, env = "SHOAL_TOPOLOGY")]
    pub(crate) topology: Option<String>,

    /// Index server to register with in the hybrid topology, as a multiaddr ending in /p2p/<id> (repeatable).
    #[arg(
        long = "index-server",
        id = "index_servers",
        global = true,
        env = "SHOAL_INDEX_SERVER",
        value_delimiter = ','
    )]
    pub(crate) index_servers: Vec<String>,

    /// Supernode topology: may this peer become a supernode (true/false; default true). Say false behind a
    /// NAT or on a slow link.
    #[arg(long, global = true, env = "SHOAL_SUPERNODE_CAPABLE", action = clap::ArgAction::Set)]
    pub(crate) supernode_capable: Option<bool>,

    /// Write pieces of 256 KiB and more straight to disk, around the page cache (true/false; default true).
    /// Say false on a spinning disk fed by several sources, where the page cache orders the writes.
    #[arg(long, global = true, env = "SHOAL_DIRECT_WRITES", action = clap::ArgAction::Set)]
    pub(crate) direct_writes: Option<bool>,

    /// Hash a completed download again from the disk before it gets its name (true/false; default false:
    /// every piece is verified before it is written, so this only catches the disk or another program
    /// changing the file meanwhile, and costs reading it all again).
    #[arg(long, global = true, env = "SHOAL_RECHECK_ON_FINISH", action = clap::ArgAction::Set)]
    pub(crate) recheck_on_finish: Option<bool>,

    /// Address of the daemon's API (default 127.0.0.1:0, a random port on this machine). Other addresses
    /// need --api-allow-remote.
    #[arg(long, global = true, env = "SHOAL_API_LISTEN")]
    pub(crate) api_listen: Option<String>,

    /// Let the API listen on an address other machines can reach (true/false; default false). The API is
    /// plain HTTP: put a TLS reverse proxy in front of it.
    #[arg(long, global = true, env = "SHOAL_API_ALLOW_REMOTE", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub(crate) api_allow_remote: Option<bool>,

    /// The path a reverse proxy serves the daemon under when it forwards that path unchanged (e.g.
    /// /shoal); the daemon answers there and at / (a proxy that strips the path needs nothing).
    #[arg(long, global = true, env = "SHOAL_API_BASE_PATH")]
    pub(crate) api_base_path: Option<String>,

    /// A persistent API key for remote tools, accepted besides the per-run api.token (at least 32
    /// characters). Better given as SHOAL_API_KEY or api_key in config.toml than on the command line.
    #[arg(long, global = true, env = "SHOAL_API_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,

    /// Log more (RUST_LOG overrides).
    #[arg(short, long, global = true)]
    pub(crate) verbose: bool,

    /// Test only: corrupt every range this peer serves (to test verification). Never use it for real.
    #[arg(long, global = true, hide = true)]
    pub(crate) test_corrupt_uploads: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Share a file or folder: prints a ticket on the first line of stdout, then serves until stopped.
    Share {
        /// File or folder to share (it is not copied; keep it in place while sharing).
        path: PathBuf,
        /// Print a JSON object (ticket, id, name, size, files) instead of the bare ticket.
        #[arg(long)]
        json: bool,
    },
    /// Download from every peer that has it; exits 0 only when the output is complete and verified.
    Get {
        /// A ticket (shoal1...) or a content id (64 hex digits, as printed by b3sum).
        what: String,
        /// Output file (or folder); an existing directory means "inside it". Default: the shared name.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Give up when no provider has been usable for this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Search the network for names (word prefixes, case and accents ignored); prints hits as they arrive.
    /// Give a hit's id to `shoal get`.
    Search {
        /// Words to look for, e.g. `holid pho` finds "Holiday Photos 2024.zip".
        #[arg(required = true)]
        words: Vec<String>,
        /// Stop after this many different results.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Stop after this many seconds.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
        /// Only results at least this big, e.g. 10MB.
        #[arg(long)]
        min_size: Option<String>,
        /// Only results at most this big.
        #[arg(long)]
        max_size: Option<String>,
        /// Only names with this extension (without the dot), e.g. zip.
        #[arg(long)]
        ext: Option<String>,
        /// Print one JSON object per line: each hit as it arrives, then the figures (`"type":"done"`).
        #[arg(long)]
        json: bool,
    },
    /// Run a small network on this machine (loopback only): several peers share a generated file and
    /// another one downloads it from all of them; prints who sent what. Leaves nothing behind.
    Demo {
        /// Number of peers that share the file.
        #[arg(long, default_value_t = 4)]
        sources: usize,
        /// Size of the generated file in MiB.
        #[arg(long, default_value_t = 256)]
        size_mib: u64,
        /// Print the outcome as JSON on stdout (the narrative goes to stderr).
        #[arg(long)]
        json: bool,
        /// Serve the downloading peer's web UI and print its one-time login link; the download starts
        /// once the browser has logged in (or after 2 minutes), and the network keeps running until Ctrl-C.
        #[arg(long)]
        ui: bool,
    },
    /// Run a peer in the foreground with its local API: prints its peer id and addresses, serves what it
    /// has, until Ctrl-C, SIGTERM or `shoal stop`. Other verbs use it when it runs.
    Daemon {
        /// Print peer id, addresses and API address as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run an index server (hybrid topology) in the foreground, with its local API: peers that name it with
    /// --index-server register their share lists with it and send it their searches.
    IndexServer {
        /// Print peer id, addresses and API address as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the effective configuration and where each value came from (flag, env, config.toml, default).
    Config {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the running daemon's peer id, addresses and counters.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the running daemon's shares and downloads.
    Ls {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the peers the running daemon is connected to.
    Peers {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script: `shoal completions bash > /etc/bash_completion.d/shoal`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Stop sharing something (a file or a folder, by the id `shoal share` printed); the file stays where it
    /// is. Through the running daemon if there is one.
    Unshare {
        /// The share's content id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the data directory: the catalog's own integrity and that its records and files agree. Prints
    /// each problem with what to do; exits 1 if there is any.
    Doctor {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Open the web UI of the running daemon: makes a one-time login link (valid 2 minutes, used once) and
    /// opens it in the browser, or prints it.
    Ui {
        /// Print the link instead of opening a browser.
        #[arg(long)]
        print: bool,
        /// Print JSON (`{url, expires_secs}`); implies --print.
        #[arg(long)]
        json: bool,
        /// The address a browser reaches the daemon by, when that is a reverse proxy's (e.g.
        /// https://nas.example/shoal): the link is made on it.
        #[arg(long, value_name = "URL")]
        via: Option<String>,
    },
    /// Stop the running daemon.
    Stop {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Talk in a topic (group chat) through the running daemon: follows it, prints its recent posts, then
    /// sends each line you type and prints each post that arrives (author and time). Ctrl-D leaves.
    Chat {
        /// The topic's name (anyone with the name can read and write).
        topic: String,
        /// Post this text and exit (for scripts).
        #[arg(long)]
        send: Option<String>,
        /// Recent posts to print first.
        #[arg(long, default_value_t = 20)]
        history: usize,
        /// One JSON object per post.
        #[arg(long)]
        json: bool,
    },
    /// Send a direct letter, sealed so that only PEER can read it; held by other peers while it is offline.
    Msg {
        /// A peer id, or a contact's name (`shoal contact add`).
        peer: String,
        /// The text (at most 64 KiB).
        text: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List direct letters sent and received, newest first, with their delivery state.
    Inbox {
        /// Only the letters with this peer (id or contact name), oldest first.
        #[arg(long)]
        with: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the topics followed; `join NAME` or `leave NAME` changes them.
    Topics {
        #[command(subcommand)]
        action: Option<TopicsAction>,
        /// Print JSON.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Petnames for peer ids: `add NAME PEER`, `rm NAME`, `ls`.
    Contact {
        #[command(subcommand)]
        action: ContactAction,
        /// Print JSON.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Print a conversation (a topic followed, or the letters with a peer) as a JSON array, oldest first.
    Export {
        /// A topic's name or id, or a peer id or contact name.
        conversation: String,
    },
}

/// `shoal topics` actions.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum TopicsAction {
    /// Follow a topic: a public one by name, or a private one with the key from its invite; or start a
    /// private one (`--private`).
    Join {
        /// The topic's name (a private topic's is only how this peer shows it).
        name: String,
        /// A private topic's key (64 hex digits).
        #[arg(long, conflicts_with = "private")]
        key: Option<String>,
        /// Start a new private topic: prints the key members join with.
        #[arg(long)]
        private: bool,
    },
    /// Stop following a topic (its history stays).
    Leave {
        /// The topic's name or id.
        name: String,
    },
}

/// `shoal contact` actions.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ContactAction {
    /// Name a peer.
    Add {
        /// The name (letters, digits, spaces; at most 64 bytes).
        name: String,
        /// The peer id.
        peer: String,
    },
    /// Forget a name.
    Rm {
        /// The name.
        name: String,
    },
    /// List every contact.
    Ls,
}
