//! `odm demo`: the four applications of RFC 8653 §3.2 on the embedded sim network. Each opens
//! real sockets through setsc(), exchanges real traffic with a local peer over loopback, and
//! then lives through a move of the host to another gateway.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use odm_core::provider::sim::SimConfig;
use odm_core::socket::{Kind, connect, listen, new_unbound};
use odm_core::{AddressType, Event, EventKind, Family, Lease, SetscOptions, Stack};
use serde_json::{Value, json};

const GRACE: Duration = Duration::from_secs(1);
const DNS_QUERIES: usize = 10;
const STREAM_CHUNKS: usize = 50;

type Fallible<T> = Result<T, String>;

fn err(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn oerr(what: &str) -> impl Fn(odm_core::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn bound() -> SetscOptions {
    SetscOptions {
        bind: Some(0),
        ..SetscOptions::default()
    }
}

/// A socket whose address setsc() chose and bound.
fn typed_socket(stack: &Stack, kind: Kind, t: AddressType) -> Fallible<(OwnedFd, Lease)> {
    let fd = new_unbound(Family::V4, kind).map_err(err("socket"))?;
    let lease = stack.setsc(&fd, t, &bound()).map_err(oerr("setsc"))?;
    Ok((fd, lease))
}

/// What one application saw.
struct Report {
    app: &'static str,
    t: AddressType,
    before: IpAddr,
    after: IpAddr,
    exchanges_before: usize,
    exchanges_after: usize,
    outcome: String,
    event: Option<Value>,
}

/// A server on a fixed address: reachable before and after the move, on the same address.
struct Server {
    listener: TcpListener,
    lease: Lease,
}

impl Server {
    fn start(stack: &Stack) -> Fallible<Server> {
        let (fd, lease) = typed_socket(stack, Kind::Stream, AddressType::Fixed)?;
        listen(fd.as_raw_fd(), 16).map_err(oerr("listen"))?;
        Ok(Server {
            listener: TcpListener::from(fd),
            lease,
        })
    }

    /// A client connects and is echoed; the server sees the connection arrive at its address.
    fn serve_one(&self) -> Fallible<()> {
        let addr = self.listener.local_addr().map_err(err("local_addr"))?;
        let mut client = TcpStream::connect(addr).map_err(err("connect to the server"))?;
        let (mut conn, _) = self.listener.accept().map_err(err("accept"))?;
        client.write_all(b"hello").map_err(err("send"))?;
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf).map_err(err("server read"))?;
        conn.write_all(&buf).map_err(err("server write"))?;
        client.read_exact(&mut buf).map_err(err("client read"))?;
        if &buf != b"hello"
            || conn.local_addr().map_err(err("local_addr"))?.ip() != self.lease.address()
        {
            return Err("the server's exchange went wrong".into());
        }
        Ok(())
    }
}

/// A browser-like client: one long TCP connection on a session-lasting address.
struct Browser {
    conn: TcpStream,
    lease: Lease,
}

impl Browser {
    fn start(stack: &Stack, web: SocketAddr) -> Fallible<Browser> {
        let (fd, lease) = typed_socket(stack, Kind::Stream, AddressType::SessionLasting)?;
        connect(fd.as_raw_fd(), web).map_err(oerr("connect to the web server"))?;
        Ok(Browser {
            conn: TcpStream::from(fd),
            lease,
        })
    }

    /// GET; the web server answers with the client address it saw.
    fn get(&mut self) -> Fallible<()> {
        self.conn.write_all(b"GET /\n").map_err(err("request"))?;
        let mut buf = [0u8; 64];
        let n = self.conn.read(&mut buf).map_err(err("response"))?;
        let seen = String::from_utf8_lossy(&buf[..n]);
        if seen.trim() != self.lease.address().to_string() {
            return Err(format!(
                "the web server saw {seen}, not {}",
                self.lease.address()
            ));
        }
        Ok(())
    }
}

fn web_server() -> Fallible<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(err("web server"))?;
    let addr = listener.local_addr().map_err(err("web server"))?;
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let peer = conn
                    .peer_addr()
                    .map(|p| p.ip().to_string())
                    .unwrap_or_default();
                let mut buf = [0u8; 64];
                while matches!(conn.read(&mut buf), Ok(n) if n > 0) {
                    if conn.write_all(format!("{peer}\n").as_bytes()).is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// A DNS-like resolver on loopback: answers each query with the address it came from.
fn resolver() -> Fallible<SocketAddr> {
    let sock = UdpSocket::bind("127.0.0.1:0").map_err(err("resolver"))?;
    let addr = sock.local_addr().map_err(err("resolver"))?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((_, from)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(from.ip().to_string().as_bytes(), from);
        }
    });
    Ok(addr)
}

/// A DNS-like client: one query per socket, each on a nonpersistent address. It keeps one
/// socket open (as a stub resolver's listener would), which is what hears of the move.
struct Dns {
    resolver: SocketAddr,
    socket: UdpSocket,
    lease: Lease,
}

impl Dns {
    fn start(stack: &Stack, resolver: SocketAddr) -> Fallible<Dns> {
        let (fd, lease) = typed_socket(stack, Kind::Datagram, AddressType::Nonpersistent)?;
        Ok(Dns {
            resolver,
            socket: UdpSocket::from(fd),
            lease,
        })
    }

    fn queries(&self, stack: &Stack, n: usize) -> Fallible<()> {
        for _ in 0..n {
            let (fd, lease) = typed_socket(stack, Kind::Datagram, AddressType::Nonpersistent)?;
            let sock = UdpSocket::from(fd);
            sock.set_read_timeout(Some(Duration::from_secs(2)))
                .map_err(err("timeout"))?;
            sock.send_to(b"example.org", self.resolver)
                .map_err(err("query"))?;
            let mut buf = [0u8; 64];
            let n = sock.recv(&mut buf).map_err(err("answer"))?;
            if String::from_utf8_lossy(&buf[..n]) != lease.address().to_string() {
                return Err("the resolver saw another source address".into());
            }
        }
        Ok(())
    }
}

/// A streaming client on a graceful-replacement address: sends chunks to a sink and, told its
/// address is deprecated, moves the stream to the replacement before the deadline.
struct Streamer {
    sink: UdpSocket,
    socket: UdpSocket,
    lease: Lease,
}

impl Streamer {
    fn start(stack: &Stack) -> Fallible<Streamer> {
        let sink = UdpSocket::bind("127.0.0.1:0").map_err(err("sink"))?;
        sink.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(err("sink"))?;
        let (fd, lease) = typed_socket(stack, Kind::Datagram, AddressType::GracefulReplacement)?;
        Ok(Streamer {
            sink,
            socket: UdpSocket::from(fd),
            lease,
        })
    }

    fn send(&self, chunks: usize) -> Fallible<()> {
        let to = self.sink.local_addr().map_err(err("sink"))?;
        let mut buf = [0u8; 1200];
        for i in 0..chunks {
            buf[0] = i as u8;
            self.socket.send_to(&buf, to).map_err(err("stream"))?;
            let (_, from) = self.sink.recv_from(&mut buf).map_err(err("sink"))?;
            if from.ip() != self.lease.address() {
                return Err("the sink saw another source address".into());
            }
        }
        Ok(())
    }
}

/// Waits on the stack's event fd, as a C or Python event loop would.
fn wait_for_events(stack: &Stack, want: usize) -> Fallible<Vec<Event>> {
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while events.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("expected {want} events, got {}", events.len()));
        }
        let mut pfd = libc::pollfd {
            fd: stack.events().as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
        events.extend(stack.events());
    }
    Ok(events)
}

fn event_json(ev: &Event, stack: &Stack) -> Value {
    let now = stack.clock().now();
    json!({
        "kind": ev.kind.name(),
        "address": ev.address.map(|a| a.to_string()),
        "deadline_in_ms": ev.deadline.map(|d| d.saturating_since(now).as_millis() as u64),
        "replacement": ev.replacement.map(|a| a.to_string()),
    })
}

pub fn run(as_json: bool) -> Fallible<()> {
    let started = Instant::now();
    let sim = SimConfig {
        latency: Duration::from_millis(5),
        grace: GRACE,
        ..SimConfig::default()
    };
    let stack = Stack::builder()
        .sim(sim)
        .app("odm-demo")
        .build()
        .map_err(oerr("stack"))?;
    let (web, dns_server) = (web_server()?, resolver()?);

    // Before the move: every application does its work.
    let server = Server::start(&stack)?;
    server.serve_one()?;
    let mut browser = Browser::start(&stack, web)?;
    for _ in 0..3 {
        browser.get()?;
    }
    let mut dns = Dns::start(&stack, dns_server)?;
    dns.queries(&stack, DNS_QUERIES)?;
    let mut stream = Streamer::start(&stack)?;
    stream.send(STREAM_CHUNKS)?;
    let before = [
        server.lease.address(),
        browser.lease.address(),
        dns.lease.address(),
        stream.lease.address(),
    ];

    // The host moves to another gateway.
    let moved = stack.host_moved().map_err(oerr("move"))?;
    let events = wait_for_events(&stack, 2)?;
    let mut reports = Vec::new();

    server.serve_one()?;
    reports.push(Report {
        app: "server",
        t: AddressType::Fixed,
        before: before[0],
        after: server.lease.address(),
        exchanges_before: 1,
        exchanges_after: 1,
        outcome: "kept: still reachable on the same address".into(),
        event: None,
    });

    for _ in 0..3 {
        browser.get()?;
    }
    reports.push(Report {
        app: "browser",
        t: AddressType::SessionLasting,
        before: before[1],
        after: browser.lease.address(),
        exchanges_before: 3,
        exchanges_after: 3,
        outcome: "kept: the same connection carried on".into(),
        event: None,
    });

    let dns_fd = dns.socket.as_raw_fd();
    let lost = events
        .iter()
        .find(|e| e.fd == Some(dns_fd) && e.kind == EventKind::AddressLost)
        .ok_or("the DNS client was not told of its lost address")?;
    let dns_event = event_json(lost, &stack);
    dns = Dns::start(&stack, dns_server)?; // re-acquire: a new socket, a new address
    dns.queries(&stack, DNS_QUERIES)?;
    reports.push(Report {
        app: "dns",
        t: AddressType::Nonpersistent,
        before: before[2],
        after: dns.lease.address(),
        exchanges_before: DNS_QUERIES,
        exchanges_after: DNS_QUERIES,
        outcome: "lost, then re-acquired from the new gateway".into(),
        event: Some(dns_event),
    });

    let stream_fd = stream.socket.as_raw_fd();
    let dep = events
        .iter()
        .find(|e| e.fd == Some(stream_fd) && e.kind == EventKind::AddressDeprecated)
        .ok_or("the streaming client was not told of its deprecated address")?;
    let deadline = dep.deadline.ok_or("a deprecation without a deadline")?;
    let stream_event = event_json(dep, &stack);
    let replacement = dep
        .replacement
        .ok_or("a deprecation without a replacement")?;
    let old = stream;
    stream = Streamer::start(&stack)?; // the pool serves the replacement
    if stream.lease.address() != replacement {
        return Err(format!(
            "migrated to {}, not to the replacement {replacement}",
            stream.lease.address()
        ));
    }
    drop(old); // closes the old socket and ends its lease
    let margin = deadline.saturating_since(stack.clock().now());
    stream.send(STREAM_CHUNKS)?;
    reports.push(Report {
        app: "streaming",
        t: AddressType::GracefulReplacement,
        before: before[3],
        after: stream.lease.address(),
        exchanges_before: STREAM_CHUNKS,
        exchanges_after: STREAM_CHUNKS,
        outcome: format!(
            "deprecated (deadline in {} ms), migrated to the replacement {:.0} ms before it",
            moved.grace.as_millis(),
            margin.as_secs_f64() * 1e3
        ),
        event: Some(stream_event),
    });

    // The old graceful-replacement address is gone once its grace period ends.
    std::thread::sleep(deadline.saturating_since(stack.clock().now()) + Duration::from_millis(10));
    stack.tick();
    let old_gone = !stack.addresses().iter().any(|a| a.address == before[3]);

    let s = stack.stats();
    let elapsed = started.elapsed();
    if as_json {
        let apps: Vec<Value> = reports
            .iter()
            .map(|r| {
                json!({
                    "app": r.app, "type": r.t.name(), "address_before": r.before.to_string(),
                    "address_after": r.after.to_string(), "exchanges_before": r.exchanges_before,
                    "exchanges_after": r.exchanges_after, "outcome": r.outcome, "event": r.event,
                })
            })
            .collect();
        let out = json!({
            "network": "sim",
            "apps": apps,
            "move": {"gateway": moved.gateway, "grace_ms": moved.grace.as_millis() as u64, "leases_lost": moved.lost,
                     "leases_deprecated": moved.deprecated, "old_graceful_address_gone_after_grace": old_gone},
            "pooling": {"setsc_calls": s.setsc_calls, "network_requests": s.network_requests, "pool_hits": s.pool_hits},
            "elapsed_ms": elapsed.as_millis() as u64,
        });
        println!("{out:#}");
    } else {
        println!("odm demo: RFC 8653 on the embedded sim network (loopback only, no privileges)\n");
        println!(
            "{:<10} {:<21} {:<13} {:<13} what happened",
            "app", "type", "before move", "after move"
        );
        for r in &reports {
            println!(
                "{:<10} {:<21} {:<13} {:<13} {}",
                r.app,
                r.t.name(),
                r.before.to_string(),
                r.after.to_string(),
                r.outcome
            );
        }
        println!(
            "\nmove: gateway 1 -> {}; {} lease lost, {} deprecated with a {} ms grace period; old address gone after it: {}",
            moved.gateway,
            moved.lost,
            moved.deprecated,
            moved.grace.as_millis(),
            if old_gone { "yes" } else { "no" }
        );
        println!(
            "pooling: {} setsc() calls, {} network requests, {} pool hits",
            s.setsc_calls, s.network_requests, s.pool_hits
        );
        println!(
            "traffic: every exchange was checked to leave from its socket's leased address ({:.2} s)",
            elapsed.as_secs_f64()
        );
    }
    if !old_gone {
        return Err("the old graceful-replacement address outlived its grace period".into());
    }
    Ok(())
}
