//! A lab: hosts (network namespaces) joined by emulated links (two TUN devices and a thread between them).
//!
//! Each link is point to point: host `a` gets `10.201.K.1`, host `b` gets `10.201.K.2` (K is the link's
//! number in its lab), each with a route to the other through its end of the link, and nothing else. A
//! program in host `b` can reach host `a` only through that link, so whatever it learns (a DHT record, an
//! address another peer saw) it cannot take a shortcut over loopback. One thread per link moves the packets:
//! it reads each end, passes every packet through that direction's [`Shaper`] and writes it to the other end
//! when it is due.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::shaper::{Counts, Shape, Shaper};
use crate::tun::Tun;
use crate::{LabError, ns};

/// Interface names must be unique on the machine while they are being created (before they move).
static NEXT_IFACE: AtomicU32 = AtomicU32::new(0);

/// The largest packet a link carries; also each end's MTU unless set otherwise.
const MAX_PACKET: usize = 65_535;

/// A host of the lab: a network namespace.
#[derive(Debug)]
pub struct Host {
    name: String,
}

impl Host {
    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// One emulated link.
#[derive(Debug)]
pub struct Link {
    /// Host `a`'s address on this link.
    pub a_addr: Ipv4Addr,
    /// Host `b`'s address on this link.
    pub b_addr: Ipv4Addr,
    /// The hosts and their interface names, `a` first.
    ends: [(usize, String); 2],
    stop: Arc<AtomicBool>,
    counts: Arc<Mutex<[Counts; 2]>>,
    thread: Option<JoinHandle<()>>,
}

impl Link {
    /// What crossed the link so far: `[a to b, b to a]`.
    pub fn counts(&self) -> [Counts; 2] {
        self.counts.lock().map_or([Counts::default(); 2], |c| *c)
    }
}

/// Hosts and links; everything is removed when it is dropped.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    hosts: Vec<Host>,
    links: Vec<Link>,
}

impl Lab {
    /// A lab of `hosts` hosts and no links yet. Needs root (or `CAP_NET_ADMIN` and `CAP_SYS_ADMIN`),
    /// `/dev/net/tun` and iproute2's `ip`.
    pub fn new(hosts: usize) -> Result<Self, LabError> {
        ns::delete_stale();
        static NEXT_LAB: AtomicU32 = AtomicU32::new(0);
        let prefix = format!("shoal-lab-{}-{}", std::process::id(), NEXT_LAB.fetch_add(1, Ordering::Relaxed));
        let mut lab = Self { prefix, hosts: Vec::new(), links: Vec::new() };
        for i in 0..hosts {
            let name = format!("{}-h{i}", lab.prefix);
            ns::add(&name)?;
            lab.hosts.push(Host { name });
        }
        Ok(lab)
    }

    /// Host `i`.
    pub fn host(&self, i: usize) -> Result<&Host, LabError> {
        self.hosts.get(i).ok_or_else(|| LabError::Setup(format!("the lab has no host {i}")))
    }

    /// Link `k`, in the order they were made.
    pub fn link(&self, k: usize) -> Option<&Link> {
        self.links.get(k)
    }

    /// Joins hosts `a` and `b` with a link that does `a_to_b` and `b_to_a` to the packets of each direction,
    /// with `mtu` bytes per packet at most. Returns the link's number.
    pub fn connect(&mut self, a: usize, b: usize, a_to_b: Shape, b_to_a: Shape, mtu: u32) -> Result<usize, LabError> {
        let k = self.links.len();
        if k > 250 {
            return Err(LabError::Setup("a lab has at most 251 links".into()));
        }
        let (ha, hb) = (self.host(a)?.name.clone(), self.host(b)?.name.clone());
        let n = NEXT_IFACE.fetch_add(1, Ordering::Relaxed);
        let tag = format!("sl{}x{n}", std::process::id() % 1_000_000);
        let ta = Tun::create(&format!("{tag}a"))?;
        let tb = Tun::create(&format!("{tag}b"))?;
        let a_addr = Ipv4Addr::new(10, 201, k as u8, 1);
        let b_addr = Ipv4Addr::new(10, 201, k as u8, 2);
        let mtu = mtu.clamp(576, MAX_PACKET as u32).to_string();
        for (tun, host, me, peer) in [(&ta, &ha, a_addr, b_addr), (&tb, &hb, b_addr, a_addr)] {
            ns::ip(["link", "set", "dev", &tun.name, "netns", host])?;
            ns::ip(["-n", host, "link", "set", "dev", &tun.name, "mtu", &mtu, "up"])?;
            let (me, peer) = (format!("{me}/32"), format!("{peer}/32"));
            ns::ip(["-n", host, "addr", "add", &me, "peer", &peer, "dev", &tun.name])?;
        }
        let ends = [(a, ta.name.clone()), (b, tb.name.clone())];
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Mutex::new([Counts::default(); 2]));
        let (s, c) = (stop.clone(), counts.clone());
        let thread = std::thread::Builder::new()
            .name(format!("link-{k}"))
            .spawn(move || forward(ta, tb, Shaper::new(a_to_b), Shaper::new(b_to_a), &s, &c))
            .map_err(|err| LabError::Os { what: "starting a link's thread", err })?;
        self.links.push(Link { a_addr, b_addr, ends, stop, counts, thread: Some(thread) });
        Ok(k)
    }

    /// Makes `router` forward packets between its links, and sends everything of every other host with a
    /// link to it through that link: hosts then reach each other over two links (their own and the other's),
    /// as Internet hosts do over their access links.
    pub fn route_through(&self, router: usize) -> Result<(), LabError> {
        self.sysctl(router, "ipv4/ip_forward", "1")?;
        for l in &self.links {
            for (me, other) in [(0, 1), (1, 0)] {
                let ((host, dev), (there, _)) = (&l.ends[me], &l.ends[other]);
                if *there == router && *host != router {
                    ns::ip(["-n", self.host(*host)?.name(), "route", "add", "default", "dev", dev])?;
                }
            }
        }
        Ok(())
    }

    /// A command that runs `program` inside host `i` (`ip netns exec`; the child's pid is the program's).
    pub fn command(&self, i: usize, program: impl AsRef<std::ffi::OsStr>) -> Result<Command, LabError> {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.host(i)?.name()]).arg(program);
        Ok(c)
    }

    /// Runs `f` on a new thread inside host `i`: every socket it opens is the host's.
    pub fn spawn_in<T: Send + 'static>(
        &self,
        i: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<JoinHandle<Result<T, LabError>>, LabError> {
        let name = self.host(i)?.name.clone();
        std::thread::Builder::new()
            .name(format!("in-{name}"))
            .spawn(move || {
                ns::enter(&name)?;
                Ok(f())
            })
            .map_err(|err| LabError::Os { what: "starting a thread", err })
    }

    /// Sets a `/proc/sys/net/...` value in host `i` (e.g. `ipv4/tcp_rmem`): TCP's buffer limits are each
    /// namespace's own.
    pub fn sysctl(&self, i: usize, key: &str, value: &str) -> Result<(), LabError> {
        if key.contains("..") {
            return Err(LabError::Setup(format!("bad sysctl key {key:?}")));
        }
        let (path, value) = (format!("/proc/sys/net/{key}"), value.to_string());
        let done = self.spawn_in(i, move || std::fs::write(&path, value))?;
        done.join()
            .map_err(|_| LabError::Setup("the sysctl thread panicked".into()))??
            .map_err(|err| LabError::Os { what: "writing a sysctl", err })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for l in &self.links {
            l.stop.store(true, Ordering::Relaxed);
        }
        for l in &mut self.links {
            if let Some(t) = l.thread.take() {
                let _ = t.join();
            }
        }
        for h in &self.hosts {
            ns::delete(&h.name);
        }
    }
}

/// A link's thread: moves packets both ways until `stop`. The TUN devices close (and vanish) when it ends.
fn forward(a: Tun, b: Tun, mut ab: Shaper, mut ba: Shaper, stop: &AtomicBool, counts: &Mutex<[Counts; 2]>) {
    let mut buf = vec![0u8; MAX_PACKET];
    let mut published = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        // Sleep until a packet arrives or one is due, at most 20 ms (to notice `stop`).
        let due = [ab.next_due(), ba.next_due()].into_iter().flatten().min();
        let wait =
            due.map_or(Duration::from_millis(20), |d| d.saturating_duration_since(now)).min(Duration::from_millis(20));
        let mut fds = [
            libc::pollfd { fd: a.raw(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: b.raw(), events: libc::POLLIN, revents: 0 },
        ];
        let ts =
            libc::timespec { tv_sec: wait.as_secs() as libc::time_t, tv_nsec: wait.subsec_nanos() as libc::c_long };
        // SAFETY: `fds` is a valid array of two pollfd; `ts` lives across the call; no signal mask.
        unsafe { libc::ppoll(fds.as_mut_ptr(), 2, &ts, std::ptr::null()) };
        let now = Instant::now();
        for (from, shaper) in [(&a, &mut ab), (&b, &mut ba)] {
            // Bounded: a burst is taken in slices so that the other direction is served too.
            for _ in 0..256 {
                match from.recv(&mut buf) {
                    Ok(Some(n)) => {
                        shaper.offer(now, buf[..n].to_vec());
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
        let now = Instant::now();
        while let Some(p) = ab.pop_due(now) {
            b.send(&p);
        }
        while let Some(p) = ba.pop_due(now) {
            a.send(&p);
        }
        if now.duration_since(published) > Duration::from_millis(50) {
            published = now;
            if let Ok(mut c) = counts.lock() {
                *c = [ab.counts(), ba.counts()];
            }
        }
    }
    if let Ok(mut c) = counts.lock() {
        *c = [ab.counts(), ba.counts()];
    }
}
