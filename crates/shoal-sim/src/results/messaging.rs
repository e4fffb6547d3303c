//! The messaging section of `RESULTS.md`: one topic on 1,000 real peers (`scenarios/messaging-1k.toml`)
//! and letters to peers that are away while the others churn (`scenarios/letters-churn-*.toml`), each
//! beside the target and the literature's anchor.
//!
//! These are runs of whole nodes (minutes each), so `--reuse-real` takes them from the `messaging.json`
//! of an earlier run, as it does the structured topology's; when that file is missing they run, each in a
//! child process of its own ([`run_alone`]).

use std::fmt::Write as _;
use std::path::Path;

use super::{ResultsError, verdict, write};
use crate::real::letters::{self, LettersSummary};
use crate::real::messaging::{self, MessagingSummary};
use crate::scenario::ScenarioError;

/// The topic scenario (the same file as in `scenarios/`).
const TOPIC: &str = include_str!("../../scenarios/messaging-1k.toml");
/// The letters scenarios, sessions of median 30 and 2 minutes.
const LETTERS: [&str; 2] =
    [include_str!("../../scenarios/letters-churn-30min.toml"), include_str!("../../scenarios/letters-churn-2min.toml")];

/// Delivery within this many seconds of the recipient's return counts as on time (the 10 s).
const ON_TIME_TARGET: f64 = 0.999;

/// What the messaging runs measured.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct MessagingRuns {
    topic: MessagingSummary,
    letters: Vec<LettersSummary>,
}

impl MessagingRuns {
    /// Wall-clock seconds the runs took.
    pub(super) fn wall_seconds(&self) -> f64 {
        self.topic.wall_seconds + self.letters.iter().map(|l| l.wall_seconds).sum::<f64>()
    }
}

fn missing_table(what: &str) -> ScenarioError {
    ScenarioError::Invalid(format!("the built-in {what} scenario has no table of its kind"))
}

fn run_all() -> Result<MessagingRuns, ResultsError> {
    let (name, topic) = messaging::from_toml(TOPIC)?.ok_or_else(|| missing_table("messaging"))?;
    eprintln!("messaging: {name}, {} real peers (a process of its own) ...", topic.peers);
    let topic: MessagingSummary = run_alone(TOPIC, &name)?;
    eprintln!(
        "  delivered {:.1}%, p50 {:.0} ms, p99 {:.0} ms, {:.2} copies",
        topic.delivery_ratio * 100.0,
        topic.latency_p50_ms,
        topic.latency_p99_ms,
        topic.copies_per_delivery
    );
    let mut runs = Vec::new();
    for text in LETTERS {
        let (name, sc) = letters::from_toml(text)?.ok_or_else(|| missing_table("letters"))?;
        eprintln!(
            "letters: {name}, {} letters to {} peers that are away (a process of its own) ...",
            sc.letters, sc.recipients
        );
        let l: LettersSummary = run_alone(text, &name)?;
        eprintln!("  {:.1}% within {} s of the return", l.on_time_ratio * 100.0, sc.on_time_s);
        runs.push(l);
    }
    Ok(MessagingRuns { topic, letters: runs })
}

/// Runs a built-in scenario in a child process of this program (`shoal-sim FILE`, which prints the
/// summary as JSON). In one process the letters ran after the 1,000-peer topic had been dropped, on a
/// heap of 9-11 GB and with whatever the topic's peers left running, and took 171-190 s against 124-139 s
/// alone, with more letters late; a process each makes every run what `shoal-sim FILE` measures.
fn run_alone<T: serde::de::DeserializeOwned>(toml: &str, name: &str) -> Result<T, ResultsError> {
    let fail = |why: String| ResultsError::Child { name: name.to_string(), why };
    let mut file = tempfile::Builder::new()
        .prefix("shoal-sim-scenario-")
        .suffix(".toml")
        .tempfile()
        .map_err(|e| fail(format!("cannot write the scenario to a temporary file: {e}")))?;
    std::io::Write::write_all(&mut file, toml.as_bytes())
        .map_err(|e| fail(format!("cannot write the scenario to a temporary file: {e}")))?;
    let exe = std::env::current_exe().map_err(|e| fail(format!("cannot find this program to run it again: {e}")))?;
    let out = std::process::Command::new(exe)
        .arg(file.path())
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| fail(format!("cannot start it: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!("it ended with {} (its messages are above)", out.status)));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| fail(format!("its figures are not the expected JSON: {e}")))
}

/// The runs of an earlier invocation when `reuse` is set and they were saved, else new ones (saved).
pub(super) fn load_or_run(dir: &Path, reuse: bool) -> Result<MessagingRuns, ResultsError> {
    let saved = dir.join("messaging.json");
    let fail = |why: String| ResultsError::Reuse { path: saved.display().to_string(), why };
    if reuse && saved.exists() {
        let text = std::fs::read_to_string(&saved).map_err(|e| fail(e.to_string()))?;
        return serde_json::from_str(&text).map_err(|e| fail(e.to_string()));
    }
    let runs = run_all()?;
    let json = serde_json::to_string_pretty(&runs).map_err(|e| fail(e.to_string()))?;
    write(&saved, &json)?;
    write(&dir.join("messaging.csv"), &csv(&runs))?;
    Ok(runs)
}

fn csv(r: &MessagingRuns) -> String {
    let t = &r.topic;
    let mut csv = String::from(
        "run,peers,posts,size_bytes,link_delay_ms,delivered,p50_ms,p99_ms,mean_ms,max_ms,copies,gossip_bytes_x,gossip_stream_bytes_x,link_bytes_x,peak_rss_mib,wall_s\n",
    );
    let _ = writeln!(
        csv,
        "{},{},{},{},{},{:.4},{:.0},{:.0},{:.0},{:.0},{:.3},{:.3},{:.3},{:.3},{:.0},{:.0}",
        t.name,
        t.scenario.peers,
        t.posted,
        t.scenario.size_bytes,
        t.scenario.link_delay_ms,
        t.delivery_ratio,
        t.latency_p50_ms,
        t.latency_p99_ms,
        t.latency_mean_ms,
        t.latency_max_ms,
        t.copies_per_delivery,
        t.gossip_amplification,
        t.stream_amplification,
        t.amplification,
        t.peak_rss_mib,
        t.wall_seconds
    );
    csv.push_str(
        "\nrun,peers,recipients,senders,letters,median_session_s,churned,held_when_senders_left,on_time,delivered,p50_ms,p99_ms,max_ms,readable_at_others,wall_s\n",
    );
    for l in &r.letters {
        let s = &l.scenario;
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{:.4},{},{:.0},{:.0},{:.0},{},{:.0}",
            l.name,
            s.peers,
            s.recipients,
            s.senders,
            l.sent,
            s.median_session_s,
            l.churned_peers,
            l.held_when_senders_left,
            l.on_time_ratio,
            l.delivered,
            l.after_return_p50_ms,
            l.after_return_p99_ms,
            l.after_return_max_ms,
            l.readable_at_others,
            l.wall_seconds
        );
    }
    csv
}

/// The section: a table per kind of run and a line per target.
pub(super) fn markdown(m: &mut String, r: &MessagingRuns) {
    let t = &r.topic;
    let s = &t.scenario;
    let mesh = s.mesh();
    let _ = writeln!(m, "## Messaging: a topic on 1,000 real peers, letters under churn\n");
    let _ = writeln!(
        m,
        "Whole Shoal nodes in one process on the memory transport, every link delayed {} ms one way (`crates/shoal-sim/src/real/messaging.rs`). {} peers subscribe to one topic over a random graph of {} links each; {} publishers post {} messages of {} bytes, one every {} ms. {}Latency is from publication to arrival at each subscriber; copies are gossipsub's own count of messages received, duplicates included (`gossipsub_topic_msg_recv_counts_unfiltered_total`); bytes are per delivered post over its text size: gossipsub's message bytes (its own count: the signed posts with gossipsub's fields, no control messages); everything gossipsub's streams received (messages, IHAVE/IWANT/IDONTWANT/GRAFT/PRUNE, framing; counted under the muxer, `crates/shoal-net/src/counted.rs`), less their rate in quiet windows before and after the posts; and all bytes on the peer's links, every protocol, less their quiet rate (a rough estimate on the paused clock: the posting window's wall time follows the host). Scenario: `crates/shoal-sim/scenarios/messaging-1k.toml`.\n",
        s.link_delay_ms,
        s.peers,
        s.links,
        s.publishers,
        t.posted,
        s.size_bytes,
        s.interval_ms,
        if t.virtual_clock {
            "The clock is tokio's paused clock (one thread; time moves only when every peer waits), so link delays, hops and queues count and the work two cores do for a thousand peers does not; libp2p's own timers (gossipsub's heartbeat among them) stay on the wall clock. "
        } else {
            ""
        },
    );
    let _ = writeln!(
        m,
        "| peers | mesh D / D_high, publishing, IHAVE peers | delivered | p50 ms | p99 ms | mean ms | max ms | copies | gossip bytes | gossip stream bytes | link bytes | peak RSS MiB | wall s |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let _ = writeln!(
        m,
        "| {} | {} / {}, {}, {} | {:.1}% | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2}x | {:.2}x | {:.2}x | {:.0} | {:.0} |\n",
        s.peers,
        mesh.n,
        mesh.high,
        if mesh.flood_publish { "flood" } else { "mesh" },
        mesh.lazy,
        t.delivery_ratio * 100.0,
        t.latency_p50_ms,
        t.latency_p99_ms,
        t.latency_mean_ms,
        t.latency_max_ms,
        t.copies_per_delivery,
        t.gossip_amplification,
        t.stream_amplification,
        t.amplification,
        t.peak_rss_mib,
        t.wall_seconds
    );
    // The stream count holds all of gossipsub's traffic and none of the other protocols'; figures saved
    // before it existed fall back to the larger of the other two.
    let bytes = if t.stream_amplification > 0.0 {
        t.stream_amplification.max(t.gossip_amplification)
    } else {
        t.amplification.max(t.gossip_amplification)
    };
    let _ = writeln!(
        m,
        "- Delivered **{:.1}%**; target 100%: {}. Latency p50 **{:.0} ms**, p99 **{:.0} ms**; targets <= 300 and <= 1,000 ms at 50 ms links: {}. Mean {:.0} ms; the anchor is Waku's published benchmark, 508 ms on average end to end at 1,000 nodes with 10 kB messages.",
        t.delivery_ratio * 100.0,
        verdict(t.delivery_ratio >= 1.0),
        t.latency_p50_ms,
        t.latency_p99_ms,
        verdict(t.latency_p50_ms <= 300.0 && t.latency_p99_ms <= 1_000.0),
        t.latency_mean_ms,
    );
    let _ = writeln!(
        m,
        "- Bytes per peer per delivered post on gossipsub's streams: **{bytes:.2}x** the payload; target <= 3x: {}. Each peer gets about one copy per mesh peer that heard the post before it, so the mesh's size sets the bytes and ln N / ln(D - 1) its hops; flood publishing puts the publisher's first ring at every peer it knows and wins back hops a narrow mesh costs; every IHAVE a peer answers with an IWANT brings a whole copy. Gossipsub's defaults (D = 6, D_high = 12, flood publishing, IHAVE to a quarter of the other peers) cost 7.4x at 100 peers; the history of each setting is in `docs/ARCHITECTURE.md`, Messaging.\n",
        verdict(bytes <= 3.0),
    );

    let _ = writeln!(
        m,
        "Letters (direct messages, end-to-end encrypted) to peers that are away (`crates/shoal-sim/src/real/letters.rs`): the recipients leave, senders write to them and leave for good once each letter is held by enough peers, the other peers churn (exponential sessions and absences of the given median, structured topology), then the recipients return. On time: within 10 s of the recipient's return. Readable: letters whose text was found in any file of a peer other than its sender and recipient (every file of every home searched).\n\n| peers | recipients | senders | letters | sessions | churned | held when senders left | on time | delivered | after return p50 / p99 / max ms | readable | wall s |\n|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---:|"
    );
    for l in &r.letters {
        let s = &l.scenario;
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | median {:.0} min | {} | {} | {:.1}% | {} | {:.0} / {:.0} / {:.0} | {} | {:.0} |",
            s.peers,
            s.recipients,
            s.senders,
            l.sent,
            s.median_session_s / 60.0,
            l.churned_peers,
            l.held_when_senders_left,
            l.on_time_ratio * 100.0,
            l.delivered,
            l.after_return_p50_ms,
            l.after_return_p99_ms,
            l.after_return_max_ms,
            l.readable_at_others,
            l.wall_seconds
        );
    }
    let worst = r.letters.iter().map(|l| l.on_time_ratio).fold(1.0_f64, f64::min);
    let readable: usize = r.letters.iter().map(|l| l.readable_at_others).sum();
    let _ = writeln!(
        m,
        "\n- On time in the worst run: **{:.1}%**; target >= {:.1}%: {}. Read by a holder: **{readable}**; target 0: {}.\n",
        worst * 100.0,
        ON_TIME_TARGET * 100.0,
        verdict(worst >= ON_TIME_TARGET),
        verdict(readable == 0),
    );
}
