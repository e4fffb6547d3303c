//! `shoal`: the command-line face of a Shoal peer. Parsing lives in `cli`, each verb in `commands/`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod cli;
mod commands;
mod progress;
mod sample;
mod settings;

use std::process::ExitCode;

fn main() -> ExitCode {
    let matches = <cli::Args as clap::CommandFactory>::command().get_matches();
    let args = match <cli::Args as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    // Kademlia warns about an empty routing table whenever a peer starts alone: normal, not worth a warning.
    let filter = if args.verbose { "info,shoal=debug" } else { "warn,libp2p_kad=error" };
    let _ = tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| filter.into()))
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(args, matches)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, outermost first.
            let msg = e.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": ");
            let msg = msg.split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}
