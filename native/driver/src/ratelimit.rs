//! An endpoint-wide budget for unsolicited replies (stateless resets), so a
//! flood of packets for unknown connections cannot turn the endpoint into a
//! reflector. Time is passed in: no clock is read here.

use std::time::Instant;

/// A token bucket: `rate` tokens a second, at most `rate` banked.
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    pub fn new(per_second: u32) -> TokenBucket {
        TokenBucket {
            rate: per_second as f64,
            tokens: per_second as f64,
            last: None,
        }
    }

    /// Takes one token if there is one.
    pub fn allow(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_is_capped_and_the_budget_refills_with_time() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10);
        let burst = (0..100).filter(|_| b.allow(t0)).count();
        assert_eq!(burst, 10);
        assert!(!b.allow(t0 + Duration::from_millis(50)));
        assert!(b.allow(t0 + Duration::from_millis(150)));
        // A long pause banks no more than one second's worth.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..100).filter(|_| b.allow(later)).count(), 10);
    }
}
