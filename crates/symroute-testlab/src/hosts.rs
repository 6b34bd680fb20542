//! What sits behind a real multi-homed host, built on [`Lab::two_uplinks`]: a Docker-style
//! bridge with a container, a LAN behind a gateway-less NIC, Docker's iptables-nft port
//! publishing, and a TCP service to reach through all of it.
//!
//! TCP is spoken by the test process itself (a thread that enters the namespace with
//! `setns` before opening its socket), so no `socat`/`ncat` is needed and a connection's
//! outcome is a plain `Result`.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{veth, wait_until, Lab, Netns};

/// The bridge of [`docker_bridge`] and its container.
pub const BRIDGE_V4: &str = "172.17.0.1";
pub const BRIDGE_V6: &str = "fd00:17::1";
pub const CONTAINER_V4: &str = "172.17.0.2";
pub const CONTAINER_V6: &str = "fd00:17::2";
/// The host's NIC towards [`lan_client`] and the client on it.
pub const LAN_HOST_V4: &str = "192.168.50.1";
pub const LAN_HOST_V6: &str = "fd50::1";
pub const LAN_CLIENT_V4: &str = "192.168.50.2";
pub const LAN_CLIENT_V6: &str = "fd50::2";
/// The host service's port and the port Docker publishes on the host for the container's.
pub const SERVICE_PORT: u16 = 9090;
pub const PUBLISHED_PORT: u16 = 8080;
pub const CONTAINER_PORT: u16 = 80;

/// Runs `f` on a thread that has entered `ns`'s network namespace; sockets opened there
/// stay in it.
pub fn in_netns<T: Send + 'static>(
    ns: &Netns,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    let path = format!("/run/netns/{}", ns.name());
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: setns on a namespace file descriptor we own; it changes only this
        // thread's network namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}

/// A TCP service on `[::]:port` (dual-stack, so IPv4 too) inside a namespace: every
/// connection gets `tag` and a newline, then EOF. Stops when dropped.
#[derive(Debug)]
pub struct Service {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Service {
    pub fn start(ns: &Netns, port: u16, tag: &str) -> Service {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let tag = format!("{tag}\n");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = in_netns(ns, move || {
            let listener =
                TcpListener::bind(("::", port)).unwrap_or_else(|e| panic!("bind [::]:{port}: {e}"));
            listener
                .set_nonblocking(true)
                .expect("non-blocking listener");
            let _ = ready_tx.send(());
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.write_all(tag.as_bytes());
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("service did not start listening");
        Service {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Opens a TCP connection from `ns` to `addr:port` with an unbound socket (the kernel picks
/// the source, as for any new outbound connection) and returns the source it picked, which
/// tells the uplink it left through. Fails when no answer comes within `timeout`.
pub fn tcp_source(ns: &Netns, addr: &str, port: u16, timeout: Duration) -> Result<IpAddr, String> {
    let ip: IpAddr = addr
        .parse()
        .map_err(|e| format!("bad address {addr}: {e}"))?;
    let target = SocketAddr::new(ip, port);
    in_netns(ns, move || {
        let stream = TcpStream::connect_timeout(&target, timeout)
            .map_err(|e| format!("connect {target}: {e}"))?;
        stream
            .local_addr()
            .map(|a| a.ip())
            .map_err(|e| e.to_string())
    })
    .join()
    .map_err(|_| "connect thread panicked".to_string())?
}

/// Connects from `ns` to `addr:port` and reads the service's line. A lost SYN-ACK (an
/// answer routed the wrong way) ends in the connect timeout.
pub fn tcp_get(ns: &Netns, addr: &str, port: u16) -> Result<String, String> {
    let ip: IpAddr = addr
        .parse()
        .map_err(|e| format!("bad address {addr}: {e}"))?;
    let target = SocketAddr::new(ip, port);
    in_netns(ns, move || {
        let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(2))
            .map_err(|e| format!("connect {target}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        let mut text = String::new();
        stream
            .read_to_string(&mut text)
            .map_err(|e| format!("read from {target}: {e}"))?;
        Ok(text.trim().to_string())
    })
    .join()
    .map_err(|_| "client thread panicked".to_string())?
}

/// What the host service of the host tests answers ([`Service::start`] with it).
pub const SERVICE_TAG: &str = "host-service";

/// The host addresses a container reaches the host service at: every uplink and the bridge.
pub fn container_targets() -> Vec<&'static str> {
    let mut all = Lab::host_addresses().to_vec();
    all.extend([BRIDGE_V4, BRIDGE_V6]);
    all
}

/// Which of `targets` `from` does not reach the host service (on [`SERVICE_PORT`],
/// answering [`SERVICE_TAG`]) at.
pub fn unreachable(from: &Netns, targets: &[&'static str]) -> Vec<&'static str> {
    targets
        .iter()
        .copied()
        .filter(|a| !reaches(from, a, SERVICE_PORT, SERVICE_TAG))
        .collect()
}

/// Panics, naming them and `when`, if `from` does not reach the host service at every one
/// of `targets`.
pub fn assert_reaches_service(from: &Netns, targets: &[&'static str], when: &str) {
    assert_eq!(unreachable(from, targets), [] as [&str; 0], "{when}");
}

/// Which of `addrs` do not answer `from`: `ADDR (ping)` when a ping gets no reply, `ADDR
/// (TCP)` when the host service ([`SERVICE_PORT`], [`SERVICE_TAG`]) does not answer there.
pub fn unanswered(from: &Netns, addrs: &[&str]) -> Vec<String> {
    let mut silent = Vec::new();
    for a in addrs {
        if !crate::ping(from, a) {
            silent.push(format!("{a} (ping)"));
        }
        if !reaches(from, a, SERVICE_PORT, SERVICE_TAG) {
            silent.push(format!("{a} (TCP)"));
        }
    }
    silent
}

/// A two-uplink host with what sits behind it on a real host: a Docker bridge with a
/// container, a LAN client behind a gateway-less NIC, and the host service
/// ([`SERVICE_PORT`], [`SERVICE_TAG`]) they and the lab's client talk to. Fields drop in
/// order: the service and the namespaces behind the host first, the lab last.
pub struct BehindLab {
    _service: Service,
    pub lan: Netns,
    pub container: Netns,
    pub lab: Lab,
}

impl BehindLab {
    pub fn new() -> BehindLab {
        let lab = Lab::two_uplinks();
        let container = docker_bridge(&lab);
        let lan = lan_client(&lab);
        let service = Service::start(&lab.host, SERVICE_PORT, SERVICE_TAG);
        BehindLab {
            _service: service,
            lan,
            container,
            lab,
        }
    }

    /// Panics, saying `when`, unless the container reaches the host service at every host
    /// address ([`container_targets`]) and the LAN client at every uplink address.
    pub fn assert_everything_behind_reaches(&self, when: &str) {
        assert_reaches_service(
            &self.container,
            &container_targets(),
            &format!("container {when}"),
        );
        assert_reaches_service(&self.lan, &Lab::host_addresses(), &format!("LAN {when}"));
    }
}

impl Default for BehindLab {
    fn default() -> BehindLab {
        BehindLab::new()
    }
}

/// Whether `ns` gets `tag` from `addr:port`, trying twice: the first packets of a fresh
/// link can be lost to neighbour discovery.
pub fn reaches(ns: &Netns, addr: &str, port: u16, tag: &str) -> bool {
    (0..2).any(|_| tcp_get(ns, addr, port).is_ok_and(|t| t == tag))
}

/// A bridge `name` in the host with a container namespace on it, Docker style: the bridge
/// holds `NET.1/16` and `fd00:SUB::1/64`, the container `NET.2` / `fd00:SUB::2` with its
/// default routes through the bridge address. `net` is like `"172.17"`, `sub` like `"17"`.
pub fn bridge_with_container(host: &Netns, name: &str, net: &str, sub: &str) -> Netns {
    let container = Netns::new("ctr");
    let port = format!("v{name}");
    host.sh_ok_input(
        &["ip", "-batch", "-"],
        &format!(
            "link add {name} type bridge
             link set {name} up
             addr add {net}.0.1/16 dev {name}
             addr add fd00:{sub}::1/64 dev {name} nodad
            "
        ),
    );
    veth(host, &port, &container, "eth0");
    host.ip(&format!("link set {port} master {name}"));
    container.sh_ok_input(
        &["ip", "-batch", "-"],
        &format!(
            "addr add {net}.0.2/16 dev eth0
             addr add fd00:{sub}::2/64 dev eth0 nodad
             route add default via {net}.0.1
             route add ::/0 via fd00:{sub}::1
            "
        ),
    );
    assert!(
        wait_until(Duration::from_secs(5), || host.link_up(name)),
        "bridge {name} did not come up"
    );
    container
}

/// `docker0` 172.17.0.1/16 + fd00:17::1/64 with one container 172.17.0.2 / fd00:17::2.
pub fn docker_bridge(lab: &Lab) -> Netns {
    bridge_with_container(&lab.host, "docker0", "172.17", "17")
}

/// A LAN behind a third NIC without gateway: host lan0 192.168.50.1/24 + fd50::1/64, a
/// client 192.168.50.2 / fd50::2 whose default routes point at the host.
pub fn lan_client(lab: &Lab) -> Netns {
    let lan = Netns::new("lan");
    veth(&lab.host, "lan0", &lan, "eth0");
    lab.host.sh_ok_input(
        &["ip", "-batch", "-"],
        &format!("addr add {LAN_HOST_V4}/24 dev lan0\naddr add {LAN_HOST_V6}/64 dev lan0 nodad\n"),
    );
    lan.sh_ok_input(
        &["ip", "-batch", "-"],
        &format!(
            "addr add {LAN_CLIENT_V4}/24 dev eth0
             addr add {LAN_CLIENT_V6}/64 dev eth0 nodad
             route add default via {LAN_HOST_V4}
             route add ::/0 via {LAN_HOST_V6}
            "
        ),
    );
    lan
}

/// Publishes the container's port 80 as the host's port 8080 the way Docker writes it with
/// iptables-nft (`-p 8080:80`): nat PREROUTING to a DOCKER chain that DNATs, MASQUERADE of
/// the bridge subnet on the way out, FORWARD accepting to and from the bridge. Turns on
/// forwarding, as Docker does.
pub fn publish_port(lab: &Lab) {
    lab.host.sysctls(&[
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv6.conf.all.forwarding", "1"),
    ]);
    let rules = format!(
        "*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i docker0 -p tcp -m tcp --dport {PUBLISHED_PORT} -j DNAT --to-destination {CONTAINER_V4}:{CONTAINER_PORT}
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER -d {CONTAINER_V4}/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport {CONTAINER_PORT} -j ACCEPT
COMMIT
"
    );
    lab.host
        .sh_ok_input(&["iptables-nft-restore", "--noflush"], &rules);
}
