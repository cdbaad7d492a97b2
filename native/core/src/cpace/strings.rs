//! Byte-string utilities of the draft (§"String utility functions").

use sha2::Digest;
use zeroize::Zeroizing;

/// Appends the unsigned LEB128 encoding of `len`.
fn push_leb128(out: &mut Vec<u8>, mut len: usize) {
    loop {
        if len < 128 {
            out.push(len as u8);
        } else {
            out.push(((len & 0x7f) as u8) | 0x80);
        }
        len >>= 7;
        if len == 0 {
            break;
        }
    }
}

/// Bytes the LEB128 length prefix of `len` takes.
fn leb128_size(mut len: usize) -> usize {
    let mut n = 1;
    while len >= 128 {
        len >>= 7;
        n += 1;
    }
    n
}

/// `prepend_len(data)`: the LEB128 length of `data`, then `data`.
pub fn prepend_len(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(leb128_size(data.len()) + data.len());
    push_leb128(&mut out, data.len());
    out.extend_from_slice(data);
    out
}

/// `lv_cat(a, b, …)`: the concatenation of `prepend_len` of each part.
pub fn lv_cat(parts: &[&[u8]]) -> Vec<u8> {
    let total = parts.iter().map(|p| leb128_size(p.len()) + p.len()).sum();
    let mut out = Vec::with_capacity(total);
    for p in parts {
        push_leb128(&mut out, p.len());
        out.extend_from_slice(p);
    }
    out
}

/// Feeds `prepend_len(data)` into a hash without building the string.
pub(super) fn hash_lv<D: Digest>(h: &mut D, data: &[u8]) {
    let mut prefix = Vec::with_capacity(leb128_size(data.len()));
    push_leb128(&mut prefix, data.len());
    h.update(&prefix);
    h.update(data);
}

/// `len_zpad = max(0, s_in_bytes - len(prepend_len(PRS)) - len(prepend_len(DSI)) - 1)`.
pub(super) fn zpad_len(dsi: &[u8], prs: &[u8], s_in_bytes: usize) -> usize {
    let used = leb128_size(prs.len()) + prs.len() + leb128_size(dsi.len()) + dsi.len() + 1;
    s_in_bytes.saturating_sub(used)
}

/// `generator_string(DSI, PRS, CI, sid, s_in_bytes)`. Contains the password: the
/// result is wiped on drop.
pub fn generator_string(
    dsi: &[u8],
    prs: &[u8],
    ci: &[u8],
    sid: &[u8],
    s_in_bytes: usize,
) -> Zeroizing<Vec<u8>> {
    let zpad = vec![0u8; zpad_len(dsi, prs, s_in_bytes)];
    // Sized exactly, so the buffer never reallocates (and leaves no unwiped copy).
    Zeroizing::new(lv_cat(&[dsi, prs, &zpad, ci, sid]))
}

/// `lexiographically_larger(a, b)`: true if `a > b` in lexicographic byte order
/// (a proper prefix is smaller).
pub fn lexicographically_larger(a: &[u8], b: &[u8]) -> bool {
    a > b
}

/// `o_cat(a, b)`: `"oc"` followed by the larger, then the smaller string.
pub fn o_cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let (first, second) = if lexicographically_larger(a, b) {
        (a, b)
    } else {
        (b, a)
    };
    let mut out = Vec::with_capacity(2 + a.len() + b.len());
    out.extend_from_slice(b"oc");
    out.extend_from_slice(first);
    out.extend_from_slice(second);
    out
}

/// `transcript_ir(Ya, ADa, Yb, ADb) = lv_cat(Ya, ADa) || lv_cat(Yb, ADb)`.
pub fn transcript_ir(ya: &[u8], ada: &[u8], yb: &[u8], adb: &[u8]) -> Vec<u8> {
    let mut out = lv_cat(&[ya, ada]);
    out.extend_from_slice(&lv_cat(&[yb, adb]));
    out
}

/// `transcript_oc(Ya, ADa, Yb, ADb) = o_cat(lv_cat(Ya, ADa), lv_cat(Yb, ADb))`.
pub fn transcript_oc(ya: &[u8], ada: &[u8], yb: &[u8], adb: &[u8]) -> Vec<u8> {
    o_cat(&lv_cat(&[ya, ada]), &lv_cat(&[yb, adb]))
}
