//! The table of server handshakes in progress (half-open connections): its
//! count and arrival order, and which handshake gives way when it is full.

use super::Io;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;

impl Io {
    /// Counts a new server handshake in progress, in arrival order.
    pub(super) fn note_half_open(&mut self, conn_id: u32) {
        self.half_open += 1;
        self.half_open_order.push_back(conn_id);
        // Handshakes that completed or ended leave their ID behind; compact
        // now and then so the order stays within twice the cap.
        if self.half_open_order.len() > 2 * self.config.max_half_open.max(1) {
            self.retain_half_open_order();
        }
        self.publish_half_open();
    }

    /// Publishes the number of handshakes in progress to the counters.
    pub(super) fn publish_half_open(&self) {
        self.shared
            .stats
            .half_open
            .store(self.half_open, Ordering::Relaxed);
    }

    /// Gives up one handshake still in progress (without a word: it was
    /// never admitted), to make room for a new one: the oldest of the address
    /// holding the most (see [`half_open_victim`]), so a device that floods
    /// (its address validated by Retry) pushes out its own handshakes.
    pub(super) fn evict_half_open(&mut self) {
        self.retain_half_open_order();
        let victim = half_open_victim(
            self.half_open_order
                .iter()
                .filter_map(|id| self.conns.get(id).map(|c| (*id, c.remote))),
        );
        if let Some(id) = victim {
            self.forget(id);
            self.shared
                .stats
                .handshakes_refused
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Keeps only the IDs of handshakes still in progress, in arrival order.
    fn retain_half_open_order(&mut self) {
        let conns = &self.conns;
        self.half_open_order
            .retain(|id| conns.get(id).is_some_and(|c| c.half_open));
    }
}

/// The handshake to give up when the half-open table is full, from the
/// handshakes in progress in arrival order: among the addresses (IP) holding
/// the most, the source (IP and port) holding the most, and of that its
/// oldest; ties go to what arrived first. A device flooding from many ports
/// thus gives up its own handshakes before another device's, and before a
/// listener's single one beside it.
fn half_open_victim(in_progress: impl Iterator<Item = (u32, SocketAddr)>) -> Option<u32> {
    let entries: Vec<(u32, SocketAddr)> = in_progress.collect();
    let mut per_ip: HashMap<IpAddr, usize> = HashMap::new();
    let mut per_source: HashMap<SocketAddr, usize> = HashMap::new();
    for (_, from) in &entries {
        *per_ip.entry(from.ip()).or_default() += 1;
        *per_source.entry(*from).or_default() += 1;
    }
    let rank = |from: &SocketAddr| (per_ip[&from.ip()], per_source[from]);
    let most = entries.iter().map(|(_, from)| rank(from)).max()?;
    entries
        .iter()
        .find(|(_, from)| rank(from) == most)
        .map(|(id, _)| *id)
}

#[cfg(test)]
mod tests {
    use super::half_open_victim;
    use std::net::SocketAddr;

    #[test]
    fn the_source_holding_the_most_gives_up_its_oldest() {
        type Case<'a> = (&'a [(u32, &'a str)], Option<u32>);
        let cases: &[Case] = &[
            (&[], None),
            (&[(7, "10.0.0.1:5")], Some(7)),
            // One source: plain oldest-first.
            (
                &[(3, "10.0.0.1:5"), (4, "10.0.0.1:5"), (5, "10.0.0.1:5")],
                Some(3),
            ),
            // The flooder's oldest goes, although the listener's is older.
            (
                &[(1, "10.0.0.2:5"), (2, "10.0.0.9:5"), (3, "10.0.0.9:6")],
                Some(2),
            ),
            // Equal counts: the address whose oldest arrived first.
            (
                &[
                    (1, "10.0.0.2:5"),
                    (2, "10.0.0.9:5"),
                    (3, "10.0.0.9:6"),
                    (4, "10.0.0.2:6"),
                ],
                Some(1),
            ),
            // The address holding the most first, even if a source of another
            // address holds more on its own.
            (
                &[
                    (1, "10.0.0.2:5"),
                    (2, "10.0.0.2:5"),
                    (3, "10.0.0.9:5"),
                    (4, "10.0.0.9:6"),
                    (5, "10.0.0.9:7"),
                ],
                Some(3),
            ),
            // Within one address, the port holding the most: a listener's
            // single handshake beside a flood from the same address stays.
            (
                &[
                    (1, "10.0.0.9:5"),
                    (2, "10.0.0.9:6"),
                    (3, "10.0.0.9:7"),
                    (4, "10.0.0.9:6"),
                ],
                Some(2),
            ),
            // IPv6 too.
            (
                &[(1, "[::1]:5"), (2, "[fe80::1]:5"), (3, "[fe80::1]:6")],
                Some(2),
            ),
        ];
        for (entries, want) in cases {
            let got = half_open_victim(
                entries
                    .iter()
                    .map(|(id, a)| (*id, a.parse::<SocketAddr>().unwrap())),
            );
            assert_eq!(got, *want, "{entries:?}");
        }
    }
}
