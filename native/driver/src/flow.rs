//! Flow credit between the IO thread and the owner: events and bytes handed
//! over and not yet processed, and the [`Releaser`] that gives them back.

use crate::shared::Shared;
use cribcall_core::limits;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Events and payload bytes handed to the owner and not yet processed by it.
/// The IO thread stops reading streams while either is above its high-water mark.
#[derive(Debug, Default)]
pub struct Flow {
    events: AtomicUsize,
    bytes: AtomicUsize,
}

impl Flow {
    pub(crate) fn add(&self, events: usize, bytes: usize) {
        self.events.fetch_add(events, Ordering::AcqRel);
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
    }

    fn saturating_sub(a: &AtomicUsize, v: usize) -> usize {
        let mut cur = a.load(Ordering::Acquire);
        loop {
            let next = cur.saturating_sub(v);
            match a.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return next,
                Err(actual) => cur = actual,
            }
        }
    }

    /// True while the owner is behind.
    pub fn congested(&self) -> bool {
        self.events.load(Ordering::Acquire) >= limits::EVENT_HIGH_WATER
            || self.bytes.load(Ordering::Acquire) >= limits::EVENT_BYTES_HIGH_WATER
    }
}

/// Lets the owner's event-processing thread return flow credit.
#[derive(Clone)]
pub struct Releaser {
    shared: Arc<Shared>,
}

impl Releaser {
    pub(crate) fn new(shared: Arc<Shared>) -> Releaser {
        Releaser { shared }
    }

    pub fn release(&self, events: usize, bytes: usize) {
        let flow = &self.shared.flow;
        Flow::saturating_sub(&flow.events, events);
        Flow::saturating_sub(&flow.bytes, bytes);
        if self.shared.paused.load(Ordering::Acquire)
            && !flow.congested()
            && !self.shared.wake_pending.swap(true, Ordering::AcqRel)
        {
            self.shared.wake_now();
        }
    }
}
