//! Child processes with a deadline: a helper that hangs (a wedged `nft` waiting on a busy
//! netlink socket, say) is killed, so that the hook never holds a dispatcher queue and the
//! daemon's loop never stops for longer than that.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What a finished child wrote to stderr and how it ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stderr: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum TimedError {
    #[error("{0}")]
    Spawn(#[source] std::io::Error),
    #[error("no answer within {} s; killed", .0.as_secs_f64())]
    Timeout(Duration),
    #[error("{0}")]
    Wait(#[source] std::io::Error),
}

/// Runs `command` with `input` on its stdin, stdout discarded, stderr kept (at most 64 KiB),
/// killing it if it has not exited within `timeout`.
pub fn run(
    mut command: Command,
    input: Vec<u8>,
    timeout: Duration,
) -> Result<Finished, TimedError> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(TimedError::Spawn)?;
    // Threads, so that a child that neither reads its input nor exits cannot block us in a
    // write; both end when the child does (or is killed).
    let writer = child.stdin.take().map(|mut stdin| {
        std::thread::spawn(move || {
            // A child exiting without reading everything is its own business (EPIPE).
            let _ = stdin.write_all(&input);
        })
    });
    let reader = child.stderr.take().map(|stderr| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = stderr.take(64 * 1024).read_to_end(&mut text);
            text
        })
    });
    let status = wait(&mut child, timeout);
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let stderr = reader.and_then(|r| r.join().ok()).unwrap_or_default();
    Ok(Finished {
        status: status?,
        stderr,
    })
}

fn wait(child: &mut Child, timeout: Duration) -> Result<ExitStatus, TimedError> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait().map_err(TimedError::Wait)? {
            return Ok(status);
        }
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(TimedError::Timeout(timeout));
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_and_status_of_a_child_that_finishes() {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "cat >&2; exit 3"]);
        let done = run(cmd, b"hello".to_vec(), Duration::from_secs(30)).unwrap();
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(done.stderr, b"hello");
    }

    #[test]
    fn a_hanging_child_is_killed_at_the_deadline() {
        let mut cmd = Command::new("/bin/sh");
        // Holds stdin open and never reads it; a large input must not block us either.
        cmd.args(["-c", "exec sleep 60"]);
        let e = run(cmd, vec![b'x'; 1 << 20], Duration::from_millis(200)).unwrap_err();
        assert_eq!(e.to_string(), "no answer within 0.2 s; killed");
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let cmd = Command::new("/nonexistent/program");
        assert!(matches!(
            run(cmd, Vec::new(), Duration::from_secs(1)),
            Err(TimedError::Spawn(_))
        ));
    }
}
