//! Which connections the IO loop looks at in a turn: the "dirty" ones (a
//! datagram, a command or a timer touched them) and those whose next deadline
//! has come. An idle connection costs nothing per turn, so the loop's cost
//! follows the work, not the number of connections. Time is passed in.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

#[derive(Default)]
pub struct Schedule {
    timers: BTreeSet<(Instant, u32)>,
    due: HashMap<u32, Instant>,
    dirty: Vec<u32>,
    dirty_set: HashSet<u32>,
}

impl Schedule {
    /// The connection needs a look this turn (or the next, if the turn's
    /// list was already taken).
    pub fn mark(&mut self, id: u32) {
        if self.dirty_set.insert(id) {
            self.dirty.push(id);
        }
    }

    pub fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// The connections to look at now, in the order they were marked.
    pub fn take_dirty(&mut self) -> Vec<u32> {
        self.dirty_set.clear();
        std::mem::take(&mut self.dirty)
    }

    /// Sets (or clears) the one deadline of a connection.
    pub fn set_timer(&mut self, id: u32, at: Option<Instant>) {
        if let Some(old) = self.due.remove(&id) {
            self.timers.remove(&(old, id));
        }
        if let Some(at) = at {
            self.due.insert(id, at);
            self.timers.insert((at, id));
        }
    }

    /// Forgets a connection.
    pub fn remove(&mut self, id: u32) {
        self.set_timer(id, None);
        if self.dirty_set.remove(&id) {
            self.dirty.retain(|d| *d != id);
        }
    }

    /// Takes the connections whose deadline is at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Vec<u32> {
        let mut out = Vec::new();
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            self.due.remove(&id);
            out.push(id);
        }
        out
    }

    /// The earliest deadline of all connections.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    pub fn clear(&mut self) {
        *self = Schedule::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dirty_connections_are_listed_once_in_order() {
        let mut s = Schedule::default();
        s.mark(3);
        s.mark(1);
        s.mark(3);
        assert!(s.has_dirty());
        assert_eq!(s.take_dirty(), vec![3, 1]);
        assert!(!s.has_dirty());
        s.mark(3);
        s.remove(3);
        assert!(!s.has_dirty());
    }

    #[test]
    fn only_due_timers_fire_and_a_new_deadline_replaces_the_old() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = Schedule::default();
        s.set_timer(1, Some(t0 + ms(30)));
        s.set_timer(2, Some(t0 + ms(10)));
        s.set_timer(3, Some(t0 + ms(20)));
        s.set_timer(1, Some(t0 + ms(5))); // moved earlier
        s.set_timer(3, None); // cleared
        assert_eq!(s.next_deadline(), Some(t0 + ms(5)));
        assert_eq!(s.pop_due(t0 + ms(9)), vec![1]);
        assert_eq!(s.pop_due(t0 + ms(100)), vec![2]);
        assert_eq!(s.next_deadline(), None);
        s.set_timer(4, Some(t0));
        s.remove(4);
        assert!(s.pop_due(t0 + ms(100)).is_empty());
    }
}
