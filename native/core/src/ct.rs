//! Constant-time comparison for MACs, tags and fingerprints.

/// True when `a == b`; the time taken depends only on the lengths.
pub fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut acc = 0u8;
    for (x, y) in a.iter().zip(b) {
        acc |= x ^ y;
    }
    // Keep the optimizer from turning the fold into an early-exit comparison.
    std::hint::black_box(acc) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn table() {
        assert!(super::eq(b"", b""));
        assert!(super::eq(b"abc", b"abc"));
        assert!(!super::eq(b"abc", b"abd"));
        assert!(!super::eq(b"abc", b"ab"));
        assert!(!super::eq(&[0x80], &[0x00]));
    }
}
