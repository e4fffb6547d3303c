//! The emulator through real sockets: delay, rate, isolation and clean-up, in namespaces this test makes.
//! Needs root; without it each test says why it did not run (and fails under CI, where it must run).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use shoal_link::{Lab, Shape};

fn join<T>(h: std::thread::JoinHandle<Result<Result<T>, shoal_link::LabError>>) -> Result<T> {
    h.join().map_err(|_| anyhow::anyhow!("thread panicked"))??
}

#[test]
fn round_trip_and_rate_are_the_links() -> Result<()> {
    if !shoal_link::testable() {
        return Ok(());
    }
    let mut lab = Lab::new(2)?;
    // 40 ms each way, 5 MB/s each way.
    let shape = Shape::new(Duration::from_millis(40), 5_000_000);
    let k = lab.connect(0, 1, shape, shape, 9000)?;
    let server_ip = lab.link(k).context("link")?.b_addr;
    let (tx, rx) = std::sync::mpsc::channel();
    let server = lab.spawn_in(1, move || -> Result<u64> {
        let l = TcpListener::bind((server_ip, 0))?;
        tx.send(l.local_addr()?)?;
        let (mut s, _) = l.accept()?;
        // Echo one byte, then count what follows.
        let mut b = [0u8; 1];
        s.read_exact(&mut b)?;
        s.write_all(&b)?;
        let mut n = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let got = s.read(&mut buf)?;
            if got == 0 {
                return Ok(n);
            }
            n += got as u64;
        }
    })?;
    let addr: SocketAddr = rx.recv_timeout(Duration::from_secs(10))?;
    let client = lab.spawn_in(0, move || -> Result<(Duration, Duration)> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        s.set_nodelay(true)?;
        let t0 = Instant::now();
        s.write_all(&[7])?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b)?;
        let rtt = t0.elapsed();
        let t1 = Instant::now();
        let chunk = vec![1u8; 1 << 16];
        for _ in 0..32 {
            s.write_all(&chunk)?; // 2 MiB
        }
        s.shutdown(std::net::Shutdown::Write)?;
        let _ = s.read(&mut b)?; // the server's close: all bytes are there
        Ok((rtt, t1.elapsed()))
    })?;
    let (rtt, bulk) = join(client)?;
    let got = join(server)?;
    assert_eq!(got, 2 << 20);
    assert!(rtt >= Duration::from_millis(80), "a round trip took {rtt:?}, under the 80 ms of the link");
    assert!(rtt < Duration::from_millis(500), "a round trip took {rtt:?}");
    // 2 MiB at 5 MB/s is 0.42 s on the line, whatever the windows do.
    assert!(bulk >= Duration::from_millis(400), "2 MiB took {bulk:?}, faster than the 5 MB/s cap");
    let [ab, ba] = lab.link(k).context("link")?.counts();
    assert!(ab.bytes > 2 << 20 && ba.packets > 0, "the link carried the bytes: {ab:?} {ba:?}");
    eprintln!("rtt {rtt:?}, 2 MiB in {bulk:?} ({:.1} MB/s), drops {}", 2.097152 / bulk.as_secs_f64(), ab.dropped);
    Ok(())
}

#[test]
fn udp_crosses_and_a_flood_is_dropped_at_the_queue() -> Result<()> {
    if !shoal_link::testable() {
        return Ok(());
    }
    let mut lab = Lab::new(2)?;
    // 1 MB/s with a 20 KB queue: 200 datagrams of 1,200 bytes sent at once cannot all fit.
    let shape = Shape::new(Duration::from_millis(10), 1_000_000).with_queue(20_000);
    let k = lab.connect(0, 1, shape, shape, 1500)?;
    let server_ip = lab.link(k).context("link")?.b_addr;
    let (tx, rx) = std::sync::mpsc::channel();
    let server = lab.spawn_in(1, move || -> Result<usize> {
        let s = UdpSocket::bind((server_ip, 0))?;
        tx.send(s.local_addr()?)?;
        s.set_read_timeout(Some(Duration::from_millis(500)))?;
        let mut n = 0;
        let mut buf = [0u8; 2048];
        while s.recv(&mut buf).is_ok() {
            n += 1;
        }
        Ok(n)
    })?;
    let addr: SocketAddr = rx.recv_timeout(Duration::from_secs(10))?;
    let client = lab.spawn_in(0, move || -> Result<()> {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        for _ in 0..200 {
            s.send_to(&[0u8; 1200], addr)?;
        }
        Ok(())
    })?;
    join(client)?;
    let got = join(server)?;
    let [ab, _] = lab.link(k).context("link")?.counts();
    assert!(got > 0 && got < 200, "{got} of 200 datagrams arrived");
    assert_eq!(ab.dropped as usize + got, 200, "each datagram either crossed or was dropped: {ab:?}");
    Ok(())
}

#[test]
fn hosts_reach_each_other_only_through_links_and_nothing_is_left() -> Result<()> {
    if !shoal_link::testable() {
        return Ok(());
    }
    let names: Vec<String>;
    {
        let mut lab = Lab::new(3)?;
        let shape = Shape::new(Duration::from_millis(1), 10_000_000);
        lab.connect(0, 1, shape, shape, 1500)?;
        names = (0..3).map(|i| lab.host(i).map(|h| h.name().to_string())).collect::<Result<_, _>>()?;
        // Host 2 has no link: host 0's address on link 0 is not reachable from it.
        let a = lab.link(0).context("link")?.a_addr;
        let (tx, rx) = std::sync::mpsc::channel();
        let server = lab.spawn_in(0, move || -> Result<()> {
            let l = TcpListener::bind((a, 0))?;
            tx.send(l.local_addr()?)?;
            l.set_nonblocking(true)?;
            std::thread::sleep(Duration::from_millis(300));
            Ok(())
        })?;
        let addr: SocketAddr = rx.recv_timeout(Duration::from_secs(10))?;
        let stranger =
            lab.spawn_in(2, move || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())?;
        let neighbour = lab.spawn_in(1, move || TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_ok())?;
        assert!(!stranger.join().map_err(|_| anyhow::anyhow!("panic"))??, "host 2 reached host 0 without a link");
        assert!(neighbour.join().map_err(|_| anyhow::anyhow!("panic"))??, "host 1 could not reach host 0");
        join(server)?;
    }
    let list = std::process::Command::new("ip").args(["netns", "list"]).output()?;
    let list = String::from_utf8_lossy(&list.stdout);
    for n in names {
        assert!(!list.contains(&n), "namespace {n} is still there");
    }
    Ok(())
}

#[test]
fn hosts_behind_a_router_cross_both_links() -> Result<()> {
    if !shoal_link::testable() {
        return Ok(());
    }
    // Router 0; host 1 behind 10 ms each way, host 2 behind 20 ms: a round trip between them is 60 ms.
    let mut lab = Lab::new(3)?;
    let near = Shape::new(Duration::from_millis(10), 10_000_000);
    let far = Shape::new(Duration::from_millis(20), 10_000_000);
    lab.connect(0, 1, near, near, 1500)?;
    let k = lab.connect(0, 2, far, far, 1500)?;
    lab.route_through(0)?;
    let server_ip = lab.link(k).context("link")?.b_addr;
    let (tx, rx) = std::sync::mpsc::channel();
    let server = lab.spawn_in(2, move || -> Result<()> {
        let s = UdpSocket::bind((server_ip, 0))?;
        tx.send(s.local_addr()?)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut buf = [0u8; 64];
        let (n, from) = s.recv_from(&mut buf)?;
        s.send_to(&buf[..n], from)?;
        Ok(())
    })?;
    let addr: SocketAddr = rx.recv_timeout(Duration::from_secs(10))?;
    let client = lab.spawn_in(1, move || -> Result<Duration> {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let t0 = Instant::now();
        s.send_to(b"ping", addr)?;
        let mut buf = [0u8; 64];
        let n = s.recv(&mut buf)?;
        assert_eq!(&buf[..n], b"ping");
        Ok(t0.elapsed())
    })?;
    let rtt = join(client)?;
    join(server)?;
    assert!(rtt >= Duration::from_millis(60) && rtt < Duration::from_millis(400), "round trip {rtt:?}");
    Ok(())
}
