//! `shoal`: the command-line face of a Shoal peer. Parsing lives in `cli`, each verb in `commands/`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod cli;
mod commands;
mod progress;
mod sample;
mod settings;

use std::process::ExitCode;

/// Asks glibc's allocator to keep the memory a transfer frees instead of handing it back to the kernel at
/// once. With its defaults, every buffer over 128 KiB (a piece, its encoding, a 256 KiB yamux frame) is its
/// own `mmap`, and a heap whose free top passes 128 KiB is trimmed; either way the next buffer faults in
/// fresh zeroed pages. In a 1 GiB download that was up to 0.25 s of the downloader's CPU (`perf`: page
/// faults under yamux's frame buffers) and `shoal-bench` went from about 700 to about 1,100 MB/s without it
/// (docs/ARCHITECTURE.md, "Throughput"). The cost: up to 32 MiB of freed memory kept per allocator arena,
/// memory that was in use before, so peak RSS does not grow.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// Allocations below this come from the heap, not from `mmap` (a piece with its proofs is ~1.1 MiB).
        const MMAP_THRESHOLD: libc::c_int = 4 << 20;
        /// Free memory at a heap's top is returned to the kernel only beyond this.
        const TRIM_THRESHOLD: libc::c_int = 32 << 20;
        // SAFETY: mallopt only sets allocator parameters; it is called before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}

fn main() -> ExitCode {
    tune_allocator();
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
    // `search` exits as `grep` does: 1 means nothing was found, so its errors exit 2.
    let failure =
        if matches!(args.command, cli::Command::Search { .. }) { ExitCode::from(2) } else { ExitCode::FAILURE };
    match runtime.block_on(commands::run(args, matches)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            failure
        }
    }
}

/// The error and its causes on one line, outermost first; a cause whose words the message before it already
/// carries (an OS error a wrapper printed) is said once, not twice.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ").split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("reading /x: {0}")]
    struct Wrapper(#[source] std::io::Error);

    #[test]
    fn a_cause_the_message_already_carries_is_said_once() {
        let os = std::io::Error::from_raw_os_error(30);
        let e = anyhow::Error::new(Wrapper(os)).context("sharing /x");
        let line = super::one_line(&e);
        assert_eq!(line.matches("os error 30").count(), 1, "{line}");
        assert!(line.starts_with("sharing /x: reading /x: Read-only file system"), "{line}");
    }
}
