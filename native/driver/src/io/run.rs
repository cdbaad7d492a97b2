//! The IO thread: its loop and its body, which contains panics.

use super::{Io, SOCKET};
use crate::{Event, EventSink};
use mio::{Events, Poll};
use std::io::ErrorKind;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

/// Locks the IO state for the IO thread. A panic on the owner's thread while
/// it held the lock (an inline send) ends the endpoint like one of our own.
fn lock_io(core: &Mutex<Io>) -> MutexGuard<'_, Io> {
    let io = core.lock().unwrap_or_else(|p| p.into_inner());
    if io.shared.inline_panicked.load(Ordering::Acquire) {
        drop(io);
        panic!("a send on the owner's thread panicked");
    }
    io
}

/// The loop. Returns when shut down. Each turn looks only at the
/// connections a datagram, a command or a deadline touched. The state is
/// locked for the whole turn but not while waiting in `poll`, so the owner's
/// thread may send in between (`EndpointHandle::send`).
fn run_loop(core: &Mutex<Io>, poll: &mut Poll, sink: &mut dyn EventSink) {
    let mut events = Events::with_capacity(256);
    loop {
        let timeout = {
            let mut io = lock_io(core);
            let timeout = io.next_timeout();
            io.planned_wake = timeout.map(|t| Instant::now() + t);
            timeout
        };
        let polled = poll.poll(&mut events, timeout);
        let mut io = lock_io(core);
        io.planned_wake = Some(Instant::now());
        io.shared.stats.io_wakeups.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = polled {
            if e.kind() != ErrorKind::Interrupted {
                io.events.push(Event::Error {
                    code: "ERR_SOCKET",
                    message: format!("poll failed: {e}"),
                });
            }
        }
        let mut socket_ready = false;
        for ev in events.iter() {
            if ev.token() == SOCKET {
                socket_ready = true;
                if ev.is_writable() {
                    io.flush_blocked();
                }
            }
        }
        if io.blocked.is_empty() {
            for id in std::mem::take(&mut io.blocked_ids) {
                io.sched.mark(id);
            }
        }
        if socket_ready {
            io.read_socket();
        }
        io.drain_commands();
        io.fire_timers();
        let ids = io.process_conns();
        io.flush(&ids);
        io.reap(&ids);
        io.reschedule(&ids);
        // Delivered with the state unlocked: an owner that answers at once
        // finds the IO thread idle and sends from its own thread.
        let batch = io.take_events();
        let done = io.shutting_down;
        drop(io);
        if let Some(batch) = batch {
            sink.deliver(batch);
        }
        if done {
            break;
        }
    }
}

/// Thread body: runs the loop, contains panics, always ends with [`Event::Closed`].
pub fn run(core: Arc<Mutex<Io>>, mut poll: Poll, mut sink: impl EventSink) {
    let result = catch_unwind(AssertUnwindSafe(|| run_loop(&core, &mut poll, &mut sink)));
    let mut io = core.lock().unwrap_or_else(|p| p.into_inner());
    // Mark closed so the owner's calls fail fast from now on.
    io.shared.closed.store(true, Ordering::Release);
    match result {
        Ok(()) => {
            // Flush the CONNECTION_CLOSE frames of the shutdown.
            let ids: Vec<u32> = io.conns.keys().copied().collect();
            for &id in &ids {
                io.flush_conn(id);
            }
            io.finish_batch();
            io.reap(&ids);
            io.final_events("endpoint closed", "ERR_ENDPOINT_CLOSED");
        }
        Err(p) => {
            let msg = panic_message(p.as_ref());
            io.events.push(Event::Error {
                code: "ERR_INTERNAL",
                message: format!("the IO thread panicked: {msg}"),
            });
            let _ = catch_unwind(AssertUnwindSafe(|| {
                io.final_events(&format!("endpoint failed: {msg}"), "ERR_INTERNAL")
            }));
        }
    }
    io.events.push(Event::Closed);
    let batch = io.take_events();
    drop(io);
    if let Some(batch) = batch {
        let _ = catch_unwind(AssertUnwindSafe(|| sink.deliver(batch)));
    }
}
