//! `shoal-sim SCENARIO.toml [--csv FILE]`: runs a scenario (in virtual time, or as real nodes with
//! `mode = "real"`) and prints its figures as JSON.
//! `shoal-sim results [--full] [--reuse-real] [--out DIR]`: runs the standard experiments and writes
//! `DIR/RESULTS.md` (`--reuse-real`: the real-peer figures of the last run, from `DIR/results/real.json` and
//! `DIR/results/messaging.json`).
//!
//! A scenario with a `[distribution]` table is a file distribution (one seed, N peers); one with a
//! `[messaging]` table a topic on real peers (`shoal_sim::real::messaging`); one with a `[letters]` table
//! letters to peers that are away, under churn (`shoal_sim::real::letters`); any other is a search
//! scenario (see `shoal_sim::scenario`).
//!
//! `SHOAL_SIM_LOG` (a tracing filter, e.g. `shoal_node::messaging::letters=debug`) prints what the nodes of
//! a real run log, to stderr.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use anyhow::{Context, bail};

fn main() -> anyhow::Result<()> {
    // Silent unless asked: `SHOAL_SIM_LOG=shoal_node::messaging=debug` shows what the nodes of a real run do.
    if let Ok(filter) = std::env::var("SHOAL_SIM_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_new(&filter).with_context(|| {
                    format!("SHOAL_SIM_LOG={filter:?} is not a tracing filter (e.g. shoal_node=debug)")
                })?,
            )
            .with_writer(std::io::stderr)
            .init();
    }
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("results") {
        args.next();
        let mut opts = shoal_sim::results::Options { full: false, out: "docs".into(), reuse_real: false };
        while let Some(a) = args.next() {
            match a.as_str() {
                "--full" => opts.full = true,
                "--reuse-real" => opts.reuse_real = true,
                "--out" => opts.out = args.next().context("--out needs a directory")?.into(),
                other => bail!("unknown option {other:?} for results (try --help)"),
            }
        }
        shoal_sim::results::generate(&opts)?;
        return Ok(());
    }
    let mut scenario = None;
    let mut csv = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--csv" => csv = Some(args.next().context("--csv needs a file name")?),
            "-h" | "--help" => {
                println!("usage: shoal-sim SCENARIO.toml [--csv FILE]   (examples in crates/shoal-sim/scenarios/)");
                println!(
                    "       shoal-sim results [--full] [--reuse-real] [--out DIR]   (writes DIR/RESULTS.md and DIR/results/; DIR: docs)"
                );
                return Ok(());
            }
            other if other.starts_with('-') => bail!("unknown option {other:?} (try --help)"),
            path => scenario = Some(path.to_string()),
        }
    }
    let path = scenario.context("give a scenario file, e.g. crates/shoal-sim/scenarios/pure-1k.toml")?;
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    if let Some((name, m)) = shoal_sim::real::messaging::from_toml(&text).with_context(|| format!("in {path}"))? {
        eprintln!("{name}: {} real peers, one topic, {} posts of {} bytes ...", m.peers, m.messages, m.size_bytes);
        let summary = shoal_sim::real::messaging::run(&name, &m)?;
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    if let Some((name, l)) = shoal_sim::real::letters::from_toml(&text).with_context(|| format!("in {path}"))? {
        eprintln!("{name}: {} real peers, {} letters to {} that are away ...", l.peers, l.letters, l.recipients);
        let summary = shoal_sim::real::letters::run(&name, &l)?;
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    if let Some(d) = shoal_sim::swarm::from_toml(&text).with_context(|| format!("in {path}"))? {
        eprintln!("distribution: {} MiB to {} peers (and {:?}) ...", d.file_mib, d.peers, d.sweep);
        let results = shoal_sim::swarm::run_all(&d);
        if let Some(f) = csv {
            std::fs::write(&f, shoal_sim::swarm::csv(&results)).with_context(|| format!("writing {f}"))?;
        }
        println!("{}", serde_json::to_string_pretty(&results)?);
        return Ok(());
    }
    let sc = shoal_sim::Scenario::from_toml(&text).with_context(|| format!("in {path}"))?;
    if sc.mode == shoal_sim::scenario::Mode::Real {
        eprintln!("{}: {} real peers, {:?}, {} lookups ...", sc.name, sc.peers, sc.topology, sc.queries);
        let report = shoal_sim::real::run(&sc)?;
        if let Some(f) = csv {
            std::fs::write(&f, report.csv()).with_context(|| format!("writing {f}"))?;
        }
        println!("{}", serde_json::to_string_pretty(&report.summary)?);
        return Ok(());
    }
    eprintln!("{}: {} peers, {:?}, {} queries ...", sc.name, sc.peers, sc.topology, sc.queries);
    let report = shoal_sim::run(sc);
    if let Some(f) = csv {
        std::fs::write(&f, report.csv()).with_context(|| format!("writing {f}"))?;
    }
    println!("{}", serde_json::to_string_pretty(&report.summary)?);
    Ok(())
}
