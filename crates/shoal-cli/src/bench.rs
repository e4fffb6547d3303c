//! `shoal-bench`: throughput, CPU and memory of real `shoal` processes on loopback, next to a plain TCP
//! copy of the same bytes measured in the same run.
//!
//! ```text
//! cargo build --release -p shoal-cli && target/release/shoal-bench            # 1 GiB
//! target/release/shoal-bench --size-mib 256 --sources 1,4
//! ```
//!
//! Each case starts N `shoal share` processes on the same file and one `shoal get` process with a ticket
//! naming all N sources. Throughput is file bytes over the downloader's own transfer time (`transfer_seconds`
//! of its JSON report: from the first provider's answer to the last verified piece, so process start-up,
//! hashing at the sources and the final fsync are not counted; the figure with the fsync is printed beside
//! it). Every case runs `--runs` times, interleaved with the baseline; medians are printed. CPU seconds and peak RSS of the
//! downloader come from `wait4`, CPU seconds of the sources from `/proc/<pid>/stat`. The output is checked
//! against the BLAKE3 of the input.
//!
//! Just before each transfer, the baseline's and Shoal's alike, the bench writes and deletes a scratch file
//! of the file's size (`--cold` turns that off). Why: on a virtual machine whose balloon driver returns
//! freed memory to the host after about two seconds (free page reporting, as on the development machine),
//! the first write into such pages costs far more kernel CPU (there: `dd` of 1 GiB took 0.19 s right after
//! a delete and 0.8-1.8 s after a pause of 3-6 s). Without the warm-up that cost lands on whichever case
//! happens to follow a pause, which is Shoal's (its sources hash the file first), not the baseline's.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

mod benchkit;
mod sample;
use shoal_node::Ticket;

struct Args {
    size_mib: u64,
    sources: Vec<usize>,
    dir: Option<PathBuf>,
    runs: usize,
    cold: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args { size_mib: 1024, sources: vec![1, 4], dir: None, runs: 3, cold: false };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--size-mib" => a.size_mib = val()?.parse().context("--size-mib takes a number")?,
            "--sources" => {
                a.sources = val()?
                    .split(',')
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()
                    .context("--sources takes e.g. 1,4")?
            }
            "--dir" => a.dir = Some(PathBuf::from(val()?)),
            "--runs" => a.runs = val()?.parse::<usize>().context("--runs takes a number")?.max(1),
            "--cold" => a.cold = true,
            "-h" | "--help" => {
                println!("usage: shoal-bench [--size-mib N] [--sources 1,4] [--runs N] [--dir DIR] [--cold]");
                println!("--cold: no page-cache warm-up before each transfer (see the source's module docs)");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    Ok(a)
}

fn cpu_self() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn tv(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// Writes and deletes `size` bytes next to the outputs so that the transfer that follows writes into
/// page-cache pages the guest has just used (see the module docs). Not synced: only memory matters here.
fn warm_page_cache(work: &Path, size: u64) -> anyhow::Result<()> {
    let path = work.join("warm-up.bin");
    let mut f = std::fs::File::create(&path).context("creating the warm-up file")?;
    let chunk = vec![0x5au8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n]).context("writing the warm-up file")?;
        left -= n as u64;
    }
    drop(f);
    std::fs::remove_file(&path).context("removing the warm-up file")?;
    Ok(())
}

/// Baseline: file -> TCP socket on 127.0.0.1 -> file, with plain blocking I/O on two threads.
fn tcp_copy(input: &Path, output: &Path) -> anyhow::Result<(f64, f64)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let out = output.to_path_buf();
    let cpu0 = cpu_self();
    let t0 = Instant::now();
    let rx = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut s, _) = listener.accept()?;
        let mut f = std::fs::File::create(&out)?;
        std::io::copy(&mut s, &mut f)
    });
    let mut s = TcpStream::connect(addr)?;
    let mut f = std::fs::File::open(input)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        s.write_all(&buf[..n])?;
    }
    drop(s);
    rx.join().map_err(|_| anyhow::anyhow!("receiver thread panicked"))??;
    Ok((t0.elapsed().as_secs_f64(), cpu_self() - cpu0))
}

fn proc_cpu(pid: u32) -> f64 {
    // Fields 14 and 15 of /proc/<pid>/stat: utime and stime in clock ticks.
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / hz
}

struct Case {
    mb_s: f64,
    mb_s_synced: f64,
    cpu_get: f64,
    cpu_sources: f64,
    rss_mb: f64,
    contributors: usize,
    /// Payload bytes received (proofs, duplicates and cancelled-too-late pieces included) over file bytes.
    received_ratio: f64,
}

fn shoal_case(shoal: &Path, work: &Path, input: &Path, n: usize, id: &str, warm: bool) -> anyhow::Result<Case> {
    let mut sharers = Vec::new();
    let mut ticket: Option<Ticket> = None;
    for i in 0..n {
        let home = work.join(format!("src{n}-{i}"));
        let mut cmd = Command::new(shoal);
        cmd.arg("--home").arg(&home).arg("--loopback");
        let (sharer, t) = benchkit::start_sharer(cmd, input)?;
        match &mut ticket {
            None => ticket = Some(t),
            Some(all) => all.providers.extend(t.providers),
        }
        sharers.push(sharer);
    }
    let ticket = ticket.context("no sources")?;
    let cpu0: f64 = sharers.iter().map(|p| proc_cpu(p.0.id())).sum();
    let out = work.join(format!("out{n}.bin"));
    if warm {
        warm_page_cache(work, std::fs::metadata(input)?.len())?;
    }
    let child = Command::new(shoal)
        .arg("--home")
        .arg(work.join(format!("dst{n}")))
        .arg("--loopback")
        .arg("get")
        .arg(ticket.to_string())
        .arg("-o")
        .arg(&out)
        .arg("--json")
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting shoal get")?;
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.context("no stdout")?;
    let mut report = String::new();
    stdout.read_to_string(&mut report)?;
    let mut status = 0;
    // SAFETY: wait4 on our own child; it writes only into the two out-parameters.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::wait4(pid, &mut status, 0, &mut ru) } < 0 || status != 0 {
        bail!("shoal get failed (status {status})");
    }
    let cpu_sources = sharers.iter().map(|p| proc_cpu(p.0.id())).sum::<f64>() - cpu0;
    drop(sharers);
    let v: serde_json::Value = serde_json::from_str(report.trim()).context("reading get's JSON report")?;
    let secs = v["transfer_seconds"].as_f64().unwrap_or(f64::NAN);
    let synced_secs = v["seconds"].as_f64().unwrap_or(f64::NAN);
    let size = v["size"].as_f64().unwrap_or(0.0);
    let received_ratio = v["received"].as_f64().unwrap_or(f64::NAN) / size;
    let contributors = v["peers"].as_array().map_or(0, |a| a.iter().filter(|p| p["bytes"].as_u64() > Some(0)).count());
    let got = sample::blake3_file(&out)?;
    if got != id {
        bail!("output hash {got} differs from the input's {id}");
    }
    std::fs::remove_file(&out)?;
    Ok(Case {
        mb_s: size / secs / 1e6,
        mb_s_synced: size / synced_secs / 1e6,
        cpu_get: tv(ru.ru_utime) + tv(ru.ru_stime),
        cpu_sources,
        rss_mb: ru.ru_maxrss as f64 / 1024.0,
        contributors,
        received_ratio,
    })
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let shoal = benchkit::shoal_binary()?;
    let tmp = benchkit::scratch(args.dir.as_deref())?;
    let work = tmp.path();
    let size = args.size_mib * 1024 * 1024;
    let input = work.join("input.bin");
    eprintln!("writing {} MiB of random data ...", args.size_mib);
    sample::write_pseudo_random(&input, size)?;
    let id = sample::blake3_file(&input)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("shoal-bench: {} MiB random file over loopback, {cores} cores, id {}", args.size_mib, &id[..16]);
    println!(
        "each figure: median of {} runs (min-max in brackets); cases interleave so that drift hits all alike",
        args.runs
    );
    println!(
        "{}",
        if args.cold {
            "page cache: cold (no warm-up before transfers)"
        } else {
            "page cache: warmed before every transfer, baseline and Shoal alike (--cold: off)"
        }
    );
    let mut base_runs = Vec::new();
    let mut cases: Vec<Vec<Case>> = args.sources.iter().map(|_| Vec::new()).collect();
    for _ in 0..args.runs {
        let base_out = work.join("tcp.bin");
        if !args.cold {
            warm_page_cache(work, size)?;
        }
        let (secs, cpu) = tcp_copy(&input, &base_out)?;
        std::fs::remove_file(&base_out)?;
        base_runs.push((size as f64 / secs / 1e6, secs, cpu));
        for (k, &n) in args.sources.iter().enumerate() {
            cases[k].push(shoal_case(&shoal, work, &input, n, &id, !args.cold)?);
        }
    }
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    let (base, bmin, bmax) = med(base_runs.iter().map(|r| r.0).collect());
    let (bcpu, _, _) = med(base_runs.iter().map(|r| r.2).collect());
    println!(
        "{:<36} {:>17} {:>11} {:>9} {:>9} {:>9} {:>7} {:>9}",
        "case", "MB/s", "with fsync", "cpu get", "cpu srcs", "peak RSS", "vs TCP", "received"
    );
    println!(
        "{:<36} {:>17} {:>11} {:>8.2}s {:>9} {:>9} {:>7}",
        "baseline: plain TCP file copy",
        format!("{base:.0} [{bmin:.0}-{bmax:.0}]"),
        "-",
        bcpu,
        "-",
        "-",
        "1.00"
    );
    for (k, &n) in args.sources.iter().enumerate() {
        let c = &cases[k];
        let (mb, lo, hi) = med(c.iter().map(|c| c.mb_s).collect());
        let (synced, _, _) = med(c.iter().map(|c| c.mb_s_synced).collect());
        let (cg, _, _) = med(c.iter().map(|c| c.cpu_get).collect());
        let (cs, _, _) = med(c.iter().map(|c| c.cpu_sources).collect());
        let (_, _, rss) = med(c.iter().map(|c| c.rss_mb).collect());
        let contributors = c.iter().map(|c| c.contributors).min().unwrap_or(0);
        let (recv, _, _) = med(c.iter().map(|c| c.received_ratio).collect());
        println!(
            "{:<36} {:>17} {:>11.0} {:>8.2}s {:>8.2}s {:>7.1}MB {:>7.2} {:>8.3}x",
            format!("shoal: {n} source{} -> 1 (>= {contributors} sent)", if n == 1 { "" } else { "s" }),
            format!("{mb:.0} [{lo:.0}-{hi:.0}]"),
            synced,
            cg,
            cs,
            rss,
            mb / base,
            recv
        );
    }
    println!("MB/s: file bytes over the downloader's transfer time (first answer to last verified piece);");
    println!("with fsync: until the output is synced to disk and under its final name. Peak RSS: the largest");
    println!("of the runs; cpu: CPU seconds per run (median), downloader and all sources; received: payload");
    println!("bytes the downloader received (proofs and duplicates included) over the file's size.");
    Ok(())
}
