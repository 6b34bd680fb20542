//! Following NetworkManager across bus outages: while the system bus is gone the daemon
//! follows the kernel alone. Without a socket at the bus's path (the daemon starts before
//! dbus at boot) it waits for the socket to be created (inotify, [`SocketWatch`]); with a
//! socket that does not answer it reconnects on a timer with back-off. Logged once per change
//! of state, not per attempt.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use zbus::Message;

use crate::cli::Source;
use crate::dirty::Dirty;
use crate::nm::{system_bus_socket, NetworkManager, NmError};
use crate::socket_watch::SocketWatch;

/// The first reconnect attempt after the bus connection is lost, and the longest wait
/// between attempts.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// dbus-daemon creates its socket (`bind`) a moment before it accepts on it (`listen`): an
/// attempt right when the socket appears can be refused. A few quick attempts follow before
/// the timer's backoff, so that a bus that starts after the daemon is followed at once.
const FRESH_RETRY: Duration = Duration::from_millis(50);
const FRESH_ATTEMPTS: u32 = 10;
/// D-Bus messages handled per drain: a flood on the bus must not keep kernel events waiting.
/// What is left stays queued for the next turn of the loop.
pub const MAX_PER_DRAIN: usize = 64;

/// The wait between attempts after one that failed after waiting `delay`.
pub fn next_delay(delay: Duration) -> Duration {
    (delay * 2).clamp(FIRST_RETRY, MAX_RETRY)
}

enum State {
    Connected(Box<NetworkManager>),
    /// No socket at the bus's path: waiting for one to be created.
    AwaitingSocket(Box<SocketWatch>),
    /// The bus does not answer; the next attempt is at `at`.
    Waiting {
        at: Instant,
        delay: Duration,
    },
    /// An attempt runs in a task of its own, so a hung bus cannot hold the event loop.
    Connecting {
        task: JoinHandle<Result<Box<NetworkManager>, NmError>>,
        delay: Duration,
    },
}

/// What woke the event loop on the D-Bus side.
pub enum Wake {
    Message(zbus::Result<Message>),
    Lost,
    Retry,
    /// The bus's socket was created (or its watch failed: then a timer takes over).
    SocketCreated(std::io::Result<()>),
    Attempted(Result<Box<NetworkManager>, NmError>),
}

/// NetworkManager on the system bus, reconnected whenever the connection is lost.
pub struct Follower {
    state: State,
    /// Where the bus's socket is, if the address names a file.
    socket: Option<PathBuf>,
    /// Quick attempts left since the bus's socket appeared (see [`FRESH_RETRY`]).
    fresh: u32,
}

impl Follower {
    /// The follower for `source`: `None` when the daemon follows the kernel only, by choice or
    /// (with `auto`) because the bus's address names no socket file that could appear later.
    /// With `nm`, NetworkManager must be on the bus at start.
    pub async fn start(source: Source) -> Result<Option<Follower>, NmError> {
        let socket = system_bus_socket();
        let connected = |nm: NetworkManager, socket: Option<PathBuf>| {
            if nm.present() {
                log::info!("NetworkManager manages {:?}", nm.interfaces());
            } else {
                log::info!(
                    "NetworkManager is not on the system bus; following the kernel until it is"
                );
            }
            Some(Follower {
                state: State::Connected(Box::new(nm)),
                socket,
                fresh: 0,
            })
        };
        match source {
            Source::Netlink => Ok(None),
            Source::Nm => {
                let nm = NetworkManager::connect().await?;
                if !nm.present() {
                    return Err(NmError::Absent);
                }
                Ok(connected(nm, socket))
            }
            Source::Auto => {
                // Watch before the first attempt: a socket made right after a failed attempt
                // is then seen too.
                let watch = socket.as_deref().map(SocketWatch::new);
                match NetworkManager::connect().await {
                    Ok(nm) => Ok(connected(nm, socket)),
                    Err(e @ NmError::Bus(_)) => match (watch, &socket) {
                        (Some(Ok(watch)), Some(path)) if !watch.exists() => {
                            log::info!(
                                "no system bus yet; following the kernel, and NetworkManager \
                                 once {} appears",
                                path.display()
                            );
                            Ok(Some(Follower {
                                state: State::AwaitingSocket(Box::new(watch)),
                                socket,
                                fresh: 0,
                            }))
                        }
                        (Some(Err(watch_error)), Some(path)) => {
                            log::warn!(
                                "{e}; cannot watch {} ({watch_error}): retrying on a timer",
                                path.display()
                            );
                            Ok(Some(Follower::waiting(FIRST_RETRY, socket)))
                        }
                        (Some(Ok(_)), Some(_)) => {
                            log::warn!("{e}; following the kernel only until it answers");
                            Ok(Some(Follower::waiting(FIRST_RETRY, socket)))
                        }
                        _ => {
                            log::info!(
                                "{e}; following the kernel only (the bus's address is no \
                                 socket file to wait for)"
                            );
                            Ok(None)
                        }
                    },
                    Err(e) => {
                        log::warn!("{e}; following the kernel only until it answers");
                        Ok(Some(Follower::waiting(FIRST_RETRY, socket)))
                    }
                }
            }
        }
    }

    fn waiting(delay: Duration, socket: Option<PathBuf>) -> Follower {
        Follower {
            state: State::Waiting {
                at: Instant::now() + delay,
                delay,
            },
            socket,
            fresh: 0,
        }
    }

    /// After a failed attempt or a lost connection: without a socket at the bus's path,
    /// waits for one to be created; otherwise retries after `delay`.
    fn retry_later(&mut self, delay: Duration) {
        let waiting = State::Waiting {
            at: Instant::now() + delay,
            delay,
        };
        let Some(path) = self.socket.as_deref() else {
            self.state = waiting;
            return;
        };
        self.state = match SocketWatch::new(path) {
            Ok(watch) if !watch.exists() => {
                log::debug!("waiting for {} to be created", path.display());
                State::AwaitingSocket(Box::new(watch))
            }
            Ok(_) => waiting,
            Err(e) => {
                log::warn!("cannot watch {} ({e}): retrying on a timer", path.display());
                waiting
            }
        };
    }

    /// Whether NetworkManager is followed right now.
    pub fn following(&self) -> bool {
        matches!(&self.state, State::Connected(nm) if nm.present())
    }

    /// Waits for the next thing to do. Cancel-safe.
    pub async fn next(&mut self) -> Wake {
        match &mut self.state {
            State::Connected(nm) => match nm.next().await {
                Some(message) => Wake::Message(message),
                None => Wake::Lost,
            },
            State::AwaitingSocket(watch) => Wake::SocketCreated(watch.appeared().await),
            State::Waiting { at, .. } => {
                tokio::time::sleep_until((*at).into()).await;
                Wake::Retry
            }
            State::Connecting { task, .. } => Wake::Attempted(match task.await {
                Ok(result) => result,
                Err(e) => Err(NmError::Task(e.to_string())),
            }),
        }
    }

    fn attempt(&mut self, delay: Duration) {
        self.state = State::Connecting {
            task: tokio::spawn(async { NetworkManager::connect().await.map(Box::new) }),
            delay,
        };
    }

    /// Does what [`Follower::next`] woke up for.
    pub async fn handle(&mut self, wake: Wake, dirty: &mut Dirty) {
        match wake {
            Wake::Message(message) => {
                if let State::Connected(nm) = &mut self.state {
                    nm.handle(message, dirty).await;
                }
            }
            Wake::Lost => {
                log::warn!(
                    "lost the system bus connection; following the kernel only until it is back"
                );
                self.retry_later(FIRST_RETRY);
            }
            Wake::Retry => {
                let delay = match &self.state {
                    State::Waiting { delay, .. } => *delay,
                    _ => FIRST_RETRY,
                };
                self.attempt(delay);
            }
            Wake::SocketCreated(Ok(())) => {
                log::debug!("the system bus's socket appeared; connecting");
                self.fresh = FRESH_ATTEMPTS;
                self.attempt(FIRST_RETRY);
            }
            Wake::SocketCreated(Err(e)) => {
                log::warn!("watching for the system bus failed ({e}): retrying on a timer");
                *self = Follower::waiting(FIRST_RETRY, self.socket.take());
            }
            Wake::Attempted(Ok(nm)) => {
                if nm.present() {
                    log::info!(
                        "on the system bus; following NetworkManager ({:?})",
                        nm.interfaces()
                    );
                } else {
                    log::info!("on the system bus; NetworkManager is not on it yet");
                }
                self.fresh = 0;
                // Whatever NetworkManager changed while we were away.
                for name in nm.interfaces() {
                    dirty.mark_name(name);
                }
                self.state = State::Connected(nm);
            }
            Wake::Attempted(Err(e)) if self.fresh > 0 => {
                self.fresh -= 1;
                log::debug!(
                    "the system bus's socket does not accept yet ({e}); connecting again in \
                     {FRESH_RETRY:?}"
                );
                self.state = State::Waiting {
                    at: Instant::now() + FRESH_RETRY,
                    delay: FIRST_RETRY,
                };
            }
            Wake::Attempted(Err(e)) => {
                let delay = match &self.state {
                    State::Connecting { delay, .. } => next_delay(*delay),
                    _ => FIRST_RETRY,
                };
                log::debug!("system bus still unreachable ({e}); next attempt in {delay:?}");
                self.retry_later(delay);
            }
        }
    }

    /// Handles what is already queued, at most [`MAX_PER_DRAIN`] messages, then the work
    /// deferred to the end of a drain.
    pub async fn drain(&mut self, dirty: &mut Dirty) {
        for _ in 0..MAX_PER_DRAIN {
            let State::Connected(nm) = &mut self.state else {
                return;
            };
            match nm.try_next() {
                None => break,
                Some(Some(message)) => nm.handle(message, dirty).await,
                Some(None) => {
                    self.handle(Wake::Lost, dirty).await;
                    return;
                }
            }
        }
        if let State::Connected(nm) = &mut self.state {
            nm.settle(dirty).await;
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        if let State::Connecting { task, .. } = &self.state {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_up_to_a_ceiling() {
        let mut delay = FIRST_RETRY;
        let mut seen = vec![delay];
        for _ in 0..10 {
            delay = next_delay(delay);
            seen.push(delay);
        }
        assert_eq!(seen[1], Duration::from_secs(2));
        assert_eq!(seen[4], Duration::from_secs(16));
        assert!(seen.iter().all(|d| *d <= MAX_RETRY));
        assert_eq!(*seen.last().unwrap(), MAX_RETRY);
    }

    /// A follower about to attempt, at a bus address where no bus will ever be.
    fn without_bus() -> Follower {
        std::env::set_var(
            "DBUS_SYSTEM_BUS_ADDRESS",
            "unix:path=/nonexistent/symroute-test/system_bus_socket",
        );
        Follower::waiting(Duration::ZERO, None)
    }

    /// Without a bus an attempt fails, is logged at debug level only, and the next one waits
    /// longer; the daemon meanwhile follows the kernel (`following` is false).
    #[tokio::test]
    async fn a_failed_attempt_waits_longer_for_the_next() {
        let mut follower = without_bus();
        let mut dirty = Dirty::default();
        let wake = follower.next().await;
        assert!(matches!(wake, Wake::Retry));
        follower.handle(wake, &mut dirty).await;
        assert!(matches!(follower.state, State::Connecting { .. }));
        let wake = follower.next().await;
        assert!(matches!(wake, Wake::Attempted(Err(_))));
        follower.handle(wake, &mut dirty).await;
        assert!(matches!(follower.state, State::Waiting { delay, .. } if delay == FIRST_RETRY));
        assert!(!follower.following());
        assert!(dirty.is_empty());
    }

    /// Right after the socket appeared, a refused attempt is tried again soon, a few times,
    /// before the timer's backoff.
    #[tokio::test]
    async fn a_socket_that_just_appeared_is_tried_again_soon() {
        let mut follower = without_bus();
        let mut dirty = Dirty::default();
        follower
            .handle(Wake::SocketCreated(Ok(())), &mut dirty)
            .await;
        assert_eq!(follower.fresh, FRESH_ATTEMPTS);
        for left in (0..FRESH_ATTEMPTS).rev() {
            let wake = follower.next().await;
            if matches!(wake, Wake::Retry) {
                follower.handle(wake, &mut dirty).await;
                continue;
            }
            assert!(matches!(wake, Wake::Attempted(Err(_))));
            let before = Instant::now();
            follower.handle(wake, &mut dirty).await;
            assert_eq!(follower.fresh, left);
            assert!(
                matches!(follower.state, State::Waiting { at, .. } if at <= before + FRESH_RETRY * 2)
            );
            let wake = follower.next().await;
            follower.handle(wake, &mut dirty).await;
        }
        // Then the timer's backoff, as for any bus that does not answer.
        let wake = follower.next().await;
        follower.handle(wake, &mut dirty).await;
        assert!(
            matches!(follower.state, State::Waiting { delay, .. } if delay == Duration::from_secs(2))
        );
    }
}
