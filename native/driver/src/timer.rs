//! A timer in the IO thread's poll set that another thread can arm without
//! waking the IO thread (Linux: a `timerfd`).
//!
//! A frame sent on the owner's thread (an inline send) starts quiche's
//! loss-detection timer, usually earlier than the instant the IO thread
//! sleeps until. Waking the IO thread just to shorten its sleep costs a
//! context switch per round trip; arming this timer instead costs one system
//! call on the owner's thread, and the IO thread wakes only if the timer
//! actually expires — in a round trip the answer arrives first and the IO
//! thread, awake for that datagram, disarms it.
//!
//! Where there is no timerfd, [`WakeTimer::new`] returns `None` and the owner
//! wakes the IO thread as before.

use std::time::Instant;

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::Instant;

    /// A non-blocking monotonic timerfd.
    #[derive(Debug)]
    pub struct Fd(OwnedFd);

    impl Fd {
        pub fn new() -> io::Result<Fd> {
            // SAFETY: timerfd_create takes no pointers; a negative result is an error.
            let fd = unsafe {
                libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` is a descriptor we just created and own alone.
            Ok(Fd(unsafe { OwnedFd::from_raw_fd(fd) }))
        }

        pub fn raw(&self) -> i32 {
            self.0.as_raw_fd()
        }

        /// Expires once at `at` (relative to now; at least 1 ns, as 0 would
        /// disarm), or disarms with `None`. Resets the expiration count.
        pub fn set(&self, at: Option<Instant>) -> io::Result<()> {
            let value = match at {
                Some(at) => {
                    let d = at.saturating_duration_since(Instant::now());
                    let secs = libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX);
                    // 0 would disarm: an instant already passed expires in 1 ns.
                    let ns = d.subsec_nanos().max(u32::from(secs == 0));
                    // Below 10^9: fits c_long on every target.
                    let nanos = ns as libc::c_long;
                    libc::timespec {
                        tv_sec: secs,
                        tv_nsec: nanos,
                    }
                }
                None => libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
            };
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: value,
            };
            // SAFETY: `spec` is a valid itimerspec for the call's duration; the
            // old value is not asked for (null).
            let r = unsafe { libc::timerfd_settime(self.raw(), 0, &spec, std::ptr::null_mut()) };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }
    }
}

/// The timer, and the instant it is armed for.
#[derive(Debug)]
pub struct WakeTimer {
    #[cfg(target_os = "linux")]
    fd: imp::Fd,
    armed: Option<Instant>,
}

impl WakeTimer {
    /// A disarmed timer, or `None` where the OS has no timerfd (or it could
    /// not be created: the IO thread then sleeps with a poll timeout and the
    /// owner wakes it for an earlier deadline).
    pub fn new() -> Option<WakeTimer> {
        #[cfg(target_os = "linux")]
        {
            imp::Fd::new().ok().map(|fd| WakeTimer { fd, armed: None })
        }
        #[cfg(not(target_os = "linux"))]
        {
            None
        }
    }

    /// The descriptor to register with the poller.
    #[cfg(target_os = "linux")]
    pub fn raw_fd(&self) -> i32 {
        self.fd.raw()
    }

    /// Arms the timer to expire once at `at` (earlier or later than before),
    /// or disarms it with `None`. No system call when nothing changes. False
    /// if the OS refused: the caller must not rely on the timer then.
    pub fn set(&mut self, at: Option<Instant>) -> bool {
        if at == self.armed {
            return true;
        }
        #[cfg(target_os = "linux")]
        {
            if self.fd.set(at).is_err() {
                self.armed = None;
                return false;
            }
            self.armed = at;
            true
        }
        #[cfg(not(target_os = "linux"))]
        {
            false
        }
    }

    /// The timer expired (the poller said so): it is no longer armed, and the
    /// next `set` re-arms it even for the same instant.
    pub fn expired(&mut self) {
        self.armed = None;
    }

    /// The instant it is armed for.
    #[cfg(test)]
    pub fn armed(&self) -> Option<Instant> {
        self.armed
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use mio::unix::SourceFd;
    use mio::{Events, Interest, Poll, Token};
    use std::time::Duration;

    fn poll_with(t: &WakeTimer) -> Poll {
        let poll = Poll::new().expect("poll");
        poll.registry()
            .register(&mut SourceFd(&t.raw_fd()), Token(7), Interest::READABLE)
            .expect("register");
        poll
    }

    #[test]
    fn an_armed_timer_wakes_the_poller_at_its_instant_and_not_before() {
        let mut t = WakeTimer::new().expect("timerfd");
        let mut poll = poll_with(&t);
        let mut events = Events::with_capacity(4);
        let start = Instant::now();
        assert!(t.set(Some(start + Duration::from_millis(30))));
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .expect("poll");
        let woke = start.elapsed();
        assert_eq!(events.iter().count(), 1, "one timer event");
        assert!(woke >= Duration::from_millis(30), "{woke:?}");
        assert!(woke < Duration::from_secs(5), "{woke:?}");
    }

    #[test]
    fn a_disarmed_timer_does_not_wake_the_poller_and_rearming_works_after_expiry() {
        let mut t = WakeTimer::new().expect("timerfd");
        let mut poll = poll_with(&t);
        let mut events = Events::with_capacity(4);
        assert!(t.set(Some(Instant::now() + Duration::from_millis(20))));
        assert!(t.set(None));
        assert_eq!(t.armed(), None);
        poll.poll(&mut events, Some(Duration::from_millis(60)))
            .expect("poll");
        assert_eq!(events.iter().count(), 0, "disarmed, yet it woke the poller");
        // Expire once without reading it, then arm again: the poller (edge
        // triggered) must see the second expiry too.
        let at = Instant::now();
        assert!(t.set(Some(at)));
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .expect("poll");
        assert_eq!(events.iter().count(), 1);
        t.expired();
        assert!(t.set(Some(at)), "the same instant again, after it expired");
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .expect("poll");
        assert_eq!(events.iter().count(), 1, "the second expiry was not seen");
        t.expired();
        assert!(t.set(Some(Instant::now() + Duration::from_millis(5))));
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .expect("poll");
        assert_eq!(events.iter().count(), 1, "the second expiry was not seen");
    }

    #[test]
    fn a_later_instant_replaces_an_earlier_one() {
        let mut t = WakeTimer::new().expect("timerfd");
        let mut poll = poll_with(&t);
        let mut events = Events::with_capacity(4);
        let start = Instant::now();
        assert!(t.set(Some(start + Duration::from_millis(5))));
        assert!(t.set(Some(start + Duration::from_millis(80))));
        assert_eq!(t.armed(), Some(start + Duration::from_millis(80)));
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .expect("poll");
        assert_eq!(events.iter().count(), 1);
        assert!(
            start.elapsed() >= Duration::from_millis(80),
            "{:?}",
            start.elapsed()
        );
    }
}
