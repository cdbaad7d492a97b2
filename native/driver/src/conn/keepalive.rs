//! Keep-alive: when a connection's next PING is due (sans IO: instants in,
//! instant out).

use std::time::{Duration, Instant};

/// Keep-alive deadlines are rounded up to a grid of `ka / KEEP_ALIVE_SLOTS`
/// shared by every connection of the process: idle connections then wake the
/// IO thread together, at most `KEEP_ALIVE_SLOTS` times per interval, instead
/// of one by one (100 idle connections: 8 wake-ups per interval, not 100).
pub const KEEP_ALIVE_SLOTS: u32 = 8;

/// When the next keep-alive PING is due. A PING goes out after `ka` without
/// sending. Once the peer has been silent for 1.5 `ka` (a peer with the same
/// interval would have pinged by `ka`; the half is its slack), every `ka / 2`:
/// a restarted peer answers the next one with a stateless reset, a peer behind
/// a new NAT mapping learns our new address from it, and a vanished one is
/// given up at the idle timeout. While the peer pings us, our ACKs carry the
/// connection and we send no PING of our own: one PING and one ACK per
/// interval per connection.
///
/// A server's grid is offset by half a slot from a client's: were both on the
/// same instants, two ends with the same interval would ping in the same slot,
/// each see the other's PING only after sending its own, and stay in step
/// forever (two PINGs and two ACKs per interval instead of one each). With the
/// offset the client's PING comes first and the server's is not needed.
pub fn keep_alive_deadline(
    last_send: Instant,
    last_recv: Instant,
    ka: Duration,
    is_server: bool,
) -> Instant {
    let normal = last_send + ka;
    let fast = (last_send + ka / 2).max(last_recv + ka + ka / 2);
    let grid = ka / KEEP_ALIVE_SLOTS;
    let phase = if is_server { grid / 2 } else { Duration::ZERO };
    align_up(normal.min(fast), grid, phase)
}

/// The first instant at or after `t` on the process-wide grid of step `grid`
/// shifted by `phase`.
fn align_up(t: Instant, grid: Duration, phase: Duration) -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now) + phase;
    let step = grid.as_nanos();
    if t <= epoch || step == 0 {
        return t;
    }
    let steps = (t - epoch).as_nanos().div_ceil(step);
    match u64::try_from(steps * step) {
        Ok(ns) => epoch + Duration::from_nanos(ns),
        Err(_) => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KA: Duration = Duration::from_millis(800);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn deadlines_of_different_connections_fall_on_few_instants() {
        let t0 = Instant::now() + ms(1);
        let mut instants: Vec<Instant> = (0..100)
            .map(|i| keep_alive_deadline(t0 + ms(i * 8), t0 + ms(i * 8), KA, false))
            .collect();
        instants.sort();
        instants.dedup();
        // 100 connections over one interval: at most one instant per slot (+1 for the edge).
        assert!(
            instants.len() <= KEEP_ALIVE_SLOTS as usize + 1,
            "{}",
            instants.len()
        );
    }

    #[test]
    fn a_ping_is_late_by_less_than_one_slot_and_never_early() {
        let t0 = Instant::now() + ms(1);
        for i in 0..50 {
            let sent = t0 + ms(i * 13);
            let due = keep_alive_deadline(sent, sent, KA, false);
            assert!(due >= sent + KA);
            assert!(due < sent + KA + KA / KEEP_ALIVE_SLOTS);
        }
    }

    #[test]
    fn a_peer_that_pings_us_keeps_us_from_pinging_it() {
        let t0 = Instant::now() + ms(1);
        // We last sent an ACK 25 ms after the peer's PING; its next PING comes at KA.
        let due = keep_alive_deadline(t0 + ms(25), t0, KA, true);
        assert!(due > t0 + KA + ms(25));
    }

    #[test]
    fn two_ends_with_the_same_interval_do_not_both_ping() {
        // Whatever instant both ends last sent at, their PINGs are due at least
        // half a slot apart: the first one arrives before the other is due, and
        // the end that receives it (and ACKs it) is then not due for an interval.
        let slot = KA / KEEP_ALIVE_SLOTS;
        for i in 0..40 {
            let t0 = Instant::now() + ms(1) + ms(i * 7);
            let client = keep_alive_deadline(t0, t0, KA, false);
            let server = keep_alive_deadline(t0, t0, KA, true);
            let (first, other_is_server) = if client < server {
                (client, true)
            } else {
                (server, false)
            };
            let gap = client.max(server) - client.min(server);
            assert!(gap + ms(1) >= slot / 2, "{gap:?}");
            let other = keep_alive_deadline(first + ms(1), first, KA, other_is_server);
            assert!(other > first + KA, "the other end pings too");
        }
    }

    #[test]
    fn a_silent_peer_is_probed_every_half_interval() {
        let t0 = Instant::now() + ms(1);
        let last_recv = t0;
        let sent = t0 + KA * 2; // we pinged, nothing came back
        let due = keep_alive_deadline(sent, last_recv, KA, false);
        assert!(due >= sent + KA / 2);
        assert!(due < sent + KA / 2 + KA / KEEP_ALIVE_SLOTS);
    }
}
