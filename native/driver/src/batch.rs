//! How an event batch crosses to its owner cheaply: every frame of the batch
//! packed into one byte buffer, the (rare) other events kept as values, each
//! tagged with its position among the frames so the order is preserved.
//!
//! Packed frames, all integers little-endian `u32`:
//!
//! ```text
//! count | connId₀ len₀ | connId₁ len₁ | … | payload₀ payload₁ …
//! ```
//!
//! One allocation per batch instead of one object and one buffer per frame;
//! the JavaScript side (`src/transport/native-events.ts`) hands out views of
//! it. A batch with no frame packs to an empty buffer.

use crate::Event;

/// Bytes of the packed header: the count.
pub const COUNT_LEN: usize = 4;
/// Bytes per frame in the packed index: connection ID and length.
pub const INDEX_ENTRY_LEN: usize = 8;

/// A batch split for the crossing.
#[derive(Debug, Default)]
pub struct PackedBatch {
    /// The frames, packed (empty when the batch has none).
    pub frames: Vec<u8>,
    /// Every other event with `at`: how many of the batch's frames precede it.
    pub others: Vec<(u32, Event)>,
}

/// Packs a batch; the order of frames and other events is kept.
pub fn pack(batch: Vec<Event>) -> PackedBatch {
    let mut count = 0usize;
    let mut payload_bytes = 0usize;
    for e in &batch {
        if let Event::Frame { payload, .. } = e {
            count += 1;
            payload_bytes += payload.len();
        }
    }
    let mut out = PackedBatch::default();
    if count > 0 {
        let index_end = COUNT_LEN + count * INDEX_ENTRY_LEN;
        let mut frames = vec![0u8; index_end];
        frames.reserve_exact(payload_bytes);
        frames[..COUNT_LEN].copy_from_slice(&u32_le(count).to_le_bytes());
        out.frames = frames;
    }
    let mut at = 0usize;
    for e in batch {
        match e {
            Event::Frame { conn_id, payload } => {
                let entry = COUNT_LEN + at * INDEX_ENTRY_LEN;
                out.frames[entry..entry + 4].copy_from_slice(&conn_id.to_le_bytes());
                out.frames[entry + 4..entry + 8]
                    .copy_from_slice(&u32_le(payload.len()).to_le_bytes());
                out.frames.extend_from_slice(&payload);
                at += 1;
            }
            other => out.others.push((u32_le(at), other)),
        }
    }
    out
}

/// Frame payloads are bounded far below 4 GiB (`limits::MAX_FRAME_PAYLOAD_CAP`)
/// and a batch holds far fewer than 2³² events; saturate rather than wrap.
fn u32_le(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Reads a packed buffer back (for tests and Rust owners): `(connId, payload)`
/// in order, or `None` when the buffer is not a well-formed packing.
pub fn unpack(frames: &[u8]) -> Option<Vec<(u32, &[u8])>> {
    if frames.is_empty() {
        return Some(Vec::new());
    }
    let word = |at: usize| -> Option<u32> {
        let b = frames.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let count = word(0)? as usize;
    let mut offset = COUNT_LEN.checked_add(count.checked_mul(INDEX_ENTRY_LEN)?)?;
    let mut out = Vec::with_capacity(count.min(frames.len()));
    for i in 0..count {
        let entry = COUNT_LEN + i * INDEX_ENTRY_LEN;
        let conn = word(entry)?;
        let len = word(entry + 4)? as usize;
        let end = offset.checked_add(len)?;
        out.push((conn, frames.get(offset..end)?));
        offset = end;
    }
    (offset == frames.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(conn_id: u32, payload: &[u8]) -> Event {
        Event::Frame {
            conn_id,
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn a_batch_without_frames_packs_to_nothing() {
        let p = pack(vec![Event::Drain { conn_id: 3 }, Event::Closed]);
        assert!(p.frames.is_empty());
        assert_eq!(p.others.len(), 2);
        assert!(p.others.iter().all(|(at, _)| *at == 0));
        assert_eq!(unpack(&p.frames), Some(vec![]));
    }

    #[test]
    fn frames_and_events_keep_their_order() {
        let p = pack(vec![
            frame(7, b"a"),
            Event::Drain { conn_id: 7 },
            frame(9, b""),
            frame(7, b"hello"),
            Event::Drain { conn_id: 9 },
            frame(1, &[0xff; 300]),
            Event::Closed,
        ]);
        let frames = unpack(&p.frames).expect("well-formed");
        assert_eq!(
            frames,
            vec![
                (7, &b"a"[..]),
                (9, &b""[..]),
                (7, &b"hello"[..]),
                (1, &[0xff; 300][..])
            ]
        );
        let ats: Vec<u32> = p.others.iter().map(|(at, _)| *at).collect();
        assert_eq!(ats, vec![1, 3, 4]);
        assert_eq!(&p.frames[..4], &4u32.to_le_bytes());
        assert_eq!(&p.frames[4..12], &[7, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(p.frames.len(), 4 + 4 * 8 + 1 + 5 + 300);
    }

    #[test]
    fn unpack_refuses_what_pack_never_makes() {
        assert_eq!(unpack(&[1, 0, 0]), None); // short count
        assert_eq!(unpack(&[1, 0, 0, 0, 7, 0, 0, 0]), None); // short index
        assert_eq!(unpack(&[1, 0, 0, 0, 7, 0, 0, 0, 2, 0, 0, 0, 9]), None); // short payload
        assert_eq!(unpack(&[1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 9]), None); // trailing byte
        assert_eq!(unpack(&[0xff, 0xff, 0xff, 0xff]), None); // huge count
    }
}
