//! Progress on stderr: a bar (bytes, rate, peers) on a terminal; plain lines otherwise (a log, a pipe):
//! one when something moved (bytes verified, providers, files), at most every half second, and one every
//! [`QUIET`] while nothing does, so a download that waits for a provider does not fill a log with copies
//! of one line (a minute's stall printed 120 of them).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use shoal_node::Progress;
use tokio::sync::watch;

/// While nothing moves, a plain line this often (it says the download is still waiting).
const QUIET: Duration = Duration::from_secs(10);

/// Reports progress until the watch closes. Returns when the sender is dropped.
pub(crate) async fn report(mut rx: watch::Receiver<Progress>) {
    if std::io::stderr().is_terminal() {
        bar(rx).await
    } else {
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.tick().await;
        // What the last line said, and when.
        let mut last: Option<((u64, u64, usize, usize), Instant)> = None;
        loop {
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                _ = tick.tick() => {
                    let p = rx.borrow().clone();
                    let said = (p.size, p.verified, p.peers, p.files_done);
                    let repeat = last.is_some_and(|(was, at)| was == said && at.elapsed() < QUIET);
                    if p.size > 0 && !repeat {
                        last = Some((said, Instant::now()));
                        let pct = p.verified as f64 * 100.0 / p.size as f64;
                        let rate = p.received as f64 / started.elapsed().as_secs_f64().max(1e-3) / 1e6;
                        eprintln!(
                            "progress: {}/{} bytes ({pct:.1}%), {} peers, {rate:.1} MB/s, files {}/{}",
                            p.verified, p.size, p.peers, p.files_done, p.files_total
                        );
                    }
                }
            }
        }
    }
}

async fn bar(mut rx: watch::Receiver<Progress>) {
    let pb = indicatif::ProgressBar::new(0);
    let style = indicatif::ProgressStyle::with_template(
        "{spinner} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    pb.set_style(style);
    pb.enable_steady_tick(Duration::from_millis(200));
    while rx.changed().await.is_ok() {
        let p = rx.borrow().clone();
        pb.set_length(p.size);
        pb.set_position(p.verified);
        let files =
            if p.files_total > 1 { format!(", file {}/{}", p.files_done, p.files_total) } else { String::new() };
        pb.set_message(format!("{} peers{files}", p.peers));
    }
    pb.finish_and_clear();
}
