//! Downloads over emulated Internet links (`shoal-link`: network namespaces joined by links with a one-way
//! delay and a rate cap), through the real binary: providers found through the DHT join a download over
//! slow links, and QUIC crosses the emulator as TCP does. Needs root (namespaces, TUN devices); without it
//! each test says why it did not run, and under CI it fails instead.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Proc, SHOAL, b3sum, json, random_file, spawn};
use shoal_link::{Lab, Shape};

const ROUTER: usize = 0;
const DOWNLOADER: usize = 1;

/// A router, the downloader's host (no delay) and `sources` hosts behind links of `delay` each way and
/// `rate` bytes per second.
fn lab(sources: usize, delay: Duration, rate: u64) -> Lab {
    let mut lab = Lab::new(2 + sources).unwrap();
    let wide = Shape::new(Duration::ZERO, 1_000_000_000).with_queue(64 << 20);
    lab.connect(ROUTER, DOWNLOADER, wide, wide, 9000).unwrap();
    for s in 0..sources {
        let shape = Shape::new(delay, rate);
        lab.connect(ROUTER, 2 + s, shape, shape, 9000).unwrap();
    }
    lab.route_through(ROUTER).unwrap();
    lab
}

/// `shoal` in `host`, listening on its link's address over `proto` ("tcp" or "quic").
fn shoal_in(lab: &Lab, host: usize, home: &Path, proto: &str) -> Command {
    let ip = lab.link(host - 1).unwrap().b_addr;
    let listen = if proto == "quic" { format!("/ip4/{ip}/udp/0/quic-v1") } else { format!("/ip4/{ip}/tcp/0") };
    let mut c = lab.command(host, SHOAL).unwrap();
    c.arg("--home").arg(home).args(["--mdns", "false", "--listen", &listen]);
    c.env_remove("SHOAL_HOME").env("RUST_LOG", "warn,libp2p_kad=error");
    c
}

/// Starts `shoal share` and returns it with its ticket (the first stdout line).
fn share(mut cmd: Command, path: &Path) -> (Proc, String) {
    cmd.arg("share").arg(path);
    let mut p = spawn(cmd);
    let mut stdout = std::io::BufReader::new(p.child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut stdout, &mut line);
        let _ = tx.send(line);
    });
    let ticket = rx.recv_timeout(Duration::from_secs(60)).expect("no ticket within 60 s").trim().to_string();
    assert!(ticket.starts_with("shoal1"), "not a ticket: {ticket:?}");
    (p, ticket)
}

fn get(mut cmd: Command, ticket: &str, out: &Path) -> serde_json::Value {
    let got = cmd.arg("get").arg(ticket).arg("-o").arg(out).arg("--json").output().unwrap();
    assert!(got.status.success(), "get failed: {}", String::from_utf8_lossy(&got.stderr));
    json(&String::from_utf8_lossy(&got.stdout))
}

#[test]
fn a_provider_found_through_the_dht_joins_a_download_over_slow_links() {
    if !shoal_link::testable() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Two sources behind 100 ms round trips at 8 MB/s each; the ticket names only the first. Before, the
    // lookup at the start ran before any connection and found nobody, and none followed: one source.
    let lab = lab(2, Duration::from_millis(50), 8_000_000);
    let input = tmp.path().join("input.bin");
    random_file(&input, 40 << 20, 16);
    let (_a, ticket) = share(shoal_in(&lab, 2, &tmp.path().join("a"), "tcp"), &input);
    let t: shoal_node::Ticket = ticket.parse().unwrap();
    let (peer, addrs) = t.providers[0].clone();
    let mut b_cmd = shoal_in(&lab, 3, &tmp.path().join("b"), "tcp");
    b_cmd.arg("--bootstrap").arg(format!("{}/p2p/{peer}", addrs[0]));
    let (_b, _) = share(b_cmd, &input);
    let out = tmp.path().join("out.bin");
    let report = get(shoal_in(&lab, DOWNLOADER, &tmp.path().join("dst"), "tcp"), &ticket, &out);
    assert_eq!(b3sum(&out), b3sum(&input));
    let senders = report["peers"].as_array().unwrap().iter().filter(|p| p["bytes"].as_u64() > Some(0)).count();
    assert_eq!(senders, 2, "both sources sent pieces: {report}");
    // Everything crossed the emulated links: each source's link carried its share and more.
    let carried: u64 = (1..=2).map(|k| lab.link(k).unwrap().counts()[1].bytes).sum();
    assert!(carried > 40 << 20, "the sources' links carried {carried} bytes");
}

#[test]
fn quic_crosses_the_emulated_link() {
    if !shoal_link::testable() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(1, Duration::from_millis(25), 10_000_000);
    let input = tmp.path().join("input.bin");
    random_file(&input, 6 << 20, 17);
    let (_a, ticket) = share(shoal_in(&lab, 2, &tmp.path().join("a"), "quic"), &input);
    assert!(
        ticket.parse::<shoal_node::Ticket>().unwrap().providers[0].1.iter().all(|a| a.to_string().contains("quic"))
    );
    let out = tmp.path().join("out.bin");
    let report = get(shoal_in(&lab, DOWNLOADER, &tmp.path().join("dst"), "quic"), &ticket, &out);
    assert_eq!(b3sum(&out), b3sum(&input));
    assert_eq!(report["size"].as_u64(), Some(6 << 20));
    let [to_source, from_source] = lab.link(1).unwrap().counts();
    assert!(from_source.bytes > 6 << 20 && to_source.packets > 0, "{from_source:?} {to_source:?}");
}
