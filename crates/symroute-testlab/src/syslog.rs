//! A syslog socket of the test's own: a private mount namespace inside a lab namespace with
//! tmpfs on `/dev` (and `/run`), where the test binds a datagram socket at `/dev/log`, as
//! journald does on a real host. The machine's `/dev` is never touched: the socket is bound
//! through `/proc/PID/root`, which resolves inside the private namespace.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::daemons::PrivateMounts;
use crate::Netns;

/// Read all the time by a thread of its own, as journald does: a datagram socket's queue
/// holds only 10 messages, and a logger writing to a full one blocks.
pub struct Syslog {
    received: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    mounts: PrivateMounts,
}

impl Syslog {
    pub fn new(netns: &Netns) -> Syslog {
        let mounts = PrivateMounts::new(
            netns,
            "mount -t tmpfs -o mode=0755 symroute-test /dev\n\
             mount -t tmpfs -o mode=0755 symroute-test /run",
        );
        let path = mounts.path("/dev/log");
        let socket =
            UnixDatagram::bind(&path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sink, stopped) = (Arc::clone(&received), Arc::clone(&stop));
        let _ = socket.set_read_timeout(Some(Duration::from_millis(100)));
        // The socket's file goes with the namespace's tmpfs.
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !stopped.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    let line = String::from_utf8_lossy(&buf[..n]).into_owned();
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            }
        });
        Syslog {
            received,
            stop,
            mounts,
        }
    }

    /// Runs `program ARGS` in the namespace with every stream a pipe (stdin empty), as ssh or
    /// Ansible would, and `env` set (nothing else of the caller's environment is cleared).
    pub fn run(&self, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd: Command = self.mounts.command(program);
        cmd.args(args)
            .env_remove("SYMROUTE_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.output()
            .unwrap_or_else(|e| panic!("run {}: {e}", program.display()))
    }

    /// Every message received so far, waiting up to `timeout` for one containing `want`.
    pub fn wait_for(&mut self, want: &str, timeout: Duration) -> Vec<String> {
        let seen = |r: &Arc<Mutex<Vec<String>>>| {
            r.lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|m| m.contains(want))
        };
        crate::wait_until(timeout, || seen(&self.received));
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Syslog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
