//! Control-stream framing: a 4-byte unsigned big-endian length `L`, then `L`
//! bytes of payload (UTF-8 JSON, judged by the layers above).
//!
//! The decoder is a sans-IO state machine: bytes go in with [`FrameDecoder::push`],
//! complete payloads come out through a callback. A length of 0 or above the
//! configured maximum is refused from the four header bytes alone, before any
//! body byte is buffered, so a peer can never make us allocate more than
//! `max_payload` bytes per connection.

use std::fmt;

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 4;
/// Default maximum payload (protocol brief: 65,536 bytes).
pub const DEFAULT_MAX_PAYLOAD: usize = 65_536;
/// Largest maximum payload a user may configure (1 MiB).
pub const MAX_CONFIGURABLE_PAYLOAD: usize = 1 << 20;

/// Why a frame was refused. Every variant is a PROTOCOL_ERROR on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The header announced `L = 0`.
    Empty,
    /// The header (or a payload handed to the encoder) exceeds the maximum.
    TooLarge { len: u64, max: usize },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Empty => write!(f, "frame length 0 is not allowed"),
            FrameError::TooLarge { len, max } => {
                write!(f, "frame length {len} exceeds the maximum of {max} bytes")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// Checks a user-supplied maximum payload size.
pub fn validate_max_payload(max: usize) -> Result<usize, String> {
    if (1..=MAX_CONFIGURABLE_PAYLOAD).contains(&max) {
        Ok(max)
    } else {
        Err(format!(
            "maxFramePayload must be between 1 and {MAX_CONFIGURABLE_PAYLOAD}, got {max}"
        ))
    }
}

/// Checks a payload against the limit and returns the header to send before it.
pub fn frame_header(payload_len: usize, max: usize) -> Result<[u8; HEADER_LEN], FrameError> {
    if payload_len == 0 {
        return Err(FrameError::Empty);
    }
    if payload_len > max {
        return Err(FrameError::TooLarge {
            len: payload_len as u64,
            max,
        });
    }
    // payload_len <= MAX_CONFIGURABLE_PAYLOAD < 2^32, so the cast is lossless.
    Ok((payload_len as u32).to_be_bytes())
}

/// Encodes one frame (header + payload) into a new buffer.
pub fn encode_frame(payload: &[u8], max: usize) -> Result<Vec<u8>, FrameError> {
    let header = frame_header(payload.len(), max)?;
    Ok(encode_frame_with_header(&header, payload))
}

/// Header and payload in one buffer (the header from [`frame_header`]).
pub fn encode_frame_with_header(header: &[u8; HEADER_LEN], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(header);
    out.extend_from_slice(payload);
    out
}

/// Incremental frame decoder for one control stream.
#[derive(Debug)]
pub struct FrameDecoder {
    max: usize,
    header: [u8; HEADER_LEN],
    header_len: usize,
    /// Body of the frame being assembled; capacity is the announced length.
    body: Vec<u8>,
    /// Announced length of the frame being assembled (valid once the header is complete).
    expected: usize,
    failed: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder accepting payloads of 1..=`max` bytes.
    pub fn new(max: usize) -> Self {
        FrameDecoder {
            max,
            header: [0; HEADER_LEN],
            header_len: 0,
            body: Vec::new(),
            expected: 0,
            failed: None,
        }
    }

    /// The configured maximum payload.
    pub fn max_payload(&self) -> usize {
        self.max
    }

    /// Bytes of an unfinished frame currently held (header and body).
    pub fn buffered(&self) -> usize {
        self.header_len + self.body.len()
    }

    /// True when no partial frame is held.
    pub fn is_idle(&self) -> bool {
        self.header_len == 0 && self.body.is_empty()
    }

    /// Feeds bytes; calls `on_frame` for every completed payload, in order.
    ///
    /// Returns an error as soon as a header is invalid; the decoder then stays
    /// failed (every later call returns the same error) and the bytes after the
    /// bad header are not looked at.
    pub fn push(
        &mut self,
        mut data: &[u8],
        mut on_frame: impl FnMut(Vec<u8>),
    ) -> Result<(), FrameError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        while !data.is_empty() {
            if self.header_len < HEADER_LEN {
                let take = (HEADER_LEN - self.header_len).min(data.len());
                self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
                self.header_len += take;
                data = &data[take..];
                if self.header_len < HEADER_LEN {
                    break;
                }
                let len = u32::from_be_bytes(self.header) as u64;
                if len == 0 {
                    return Err(self.fail(FrameError::Empty));
                }
                if len > self.max as u64 {
                    return Err(self.fail(FrameError::TooLarge { len, max: self.max }));
                }
                self.expected = len as usize;
                self.body = Vec::with_capacity(self.expected);
                continue;
            }
            let take = (self.expected - self.body.len()).min(data.len());
            self.body.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.body.len() == self.expected {
                self.header_len = 0;
                self.expected = 0;
                on_frame(std::mem::take(&mut self.body));
            }
        }
        Ok(())
    }

    fn fail(&mut self, err: FrameError) -> FrameError {
        self.failed = Some(err.clone());
        self.header_len = 0;
        self.body = Vec::new();
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(dec: &mut FrameDecoder, chunks: &[&[u8]]) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut out = Vec::new();
        for c in chunks {
            dec.push(c, |f| out.push(f))?;
        }
        Ok(out)
    }

    #[test]
    fn header_table() {
        // (announced length, max, expected outcome)
        let max = DEFAULT_MAX_PAYLOAD;
        let cases: &[(u64, Result<(), FrameError>)] = &[
            (0, Err(FrameError::Empty)),
            (1, Ok(())),
            (max as u64, Ok(())),
            (
                max as u64 + 1,
                Err(FrameError::TooLarge {
                    len: max as u64 + 1,
                    max,
                }),
            ),
            (1 << 31, Err(FrameError::TooLarge { len: 1 << 31, max })),
            (
                u32::MAX as u64,
                Err(FrameError::TooLarge {
                    len: u32::MAX as u64,
                    max,
                }),
            ),
        ];
        for (len, expected) in cases {
            let mut dec = FrameDecoder::new(max);
            let header = (*len as u32).to_be_bytes();
            // Only the 4 header bytes are given: the verdict must come from them alone.
            let got = dec.push(&header, |_| panic!("no frame expected from a bare header"));
            assert_eq!(got, expected.clone(), "L = {len}");
            if expected.is_ok() {
                // Nothing buffered beyond the header until body bytes arrive.
                assert_eq!(dec.buffered(), HEADER_LEN);
                let body = vec![0xabu8; *len as usize];
                let frames = decode_all(&mut dec, &[&body]).unwrap();
                assert_eq!(frames, vec![body]);
                assert!(dec.is_idle());
            } else {
                assert_eq!(dec.buffered(), 0, "nothing is buffered after a bad header");
                // The decoder stays failed.
                assert!(dec.push(b"x", |_| {}).is_err());
            }
        }
    }

    #[test]
    fn header_split_one_plus_three() {
        let payload = br#"{"type":"PING","timestamp":123}"#;
        let frame = encode_frame(payload, DEFAULT_MAX_PAYLOAD).unwrap();
        let mut dec = FrameDecoder::new(DEFAULT_MAX_PAYLOAD);
        let frames = decode_all(&mut dec, &[&frame[..1], &frame[1..4], &frame[4..]]).unwrap();
        assert_eq!(frames, vec![payload.to_vec()]);
    }

    #[test]
    fn ping_example_bytes() {
        // The brief's example: its body bytes are exactly the 31 bytes of
        // `{"type":"PING","timestamp":123}`; its header `00 00 00 21` (33) is a
        // known erratum of v0.2 (the length must equal the body: 0x1f). SPEC.md
        // records the corrected frame.
        let brief_body = "7b 22 74 79 70 65 22 3a 22 50 49 4e 47 22 2c 22 74 69 6d 65 73 74 61 6d 70 22 3a 31 32 33 7d";
        let payload = br#"{"type":"PING","timestamp":123}"#;
        assert_eq!(payload.len(), 31);
        let frame = encode_frame(payload, DEFAULT_MAX_PAYLOAD).unwrap();
        let hex: String = frame.iter().map(|b| format!("{b:02x} ")).collect();
        assert_eq!(hex.trim_end(), format!("00 00 00 1f {brief_body}"));
        // A decoder fed the brief's literal bytes (header 33) waits for 2 more
        // body bytes instead of producing a frame.
        let mut literal: Vec<u8> = vec![0, 0, 0, 0x21];
        literal.extend_from_slice(payload);
        let mut dec = FrameDecoder::new(DEFAULT_MAX_PAYLOAD);
        dec.push(&literal, |_| {
            panic!("33-byte header over a 31-byte body is not a frame")
        })
        .unwrap();
        assert_eq!(dec.buffered(), 4 + 31);
    }

    #[test]
    fn three_hundred_byte_frame_split_at_every_offset() {
        let payload: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
        let frame = encode_frame(&payload, DEFAULT_MAX_PAYLOAD).unwrap();
        for split in 0..=frame.len() {
            let mut dec = FrameDecoder::new(DEFAULT_MAX_PAYLOAD);
            let frames = decode_all(&mut dec, &[&frame[..split], &frame[split..]]).unwrap();
            assert_eq!(frames, vec![payload.clone()], "split at {split}");
            assert!(dec.is_idle());
        }
        // And byte by byte.
        let mut dec = FrameDecoder::new(DEFAULT_MAX_PAYLOAD);
        let chunks: Vec<&[u8]> = frame.chunks(1).collect();
        assert_eq!(decode_all(&mut dec, &chunks).unwrap(), vec![payload]);
    }

    #[test]
    fn two_frames_in_one_chunk_and_bad_header_after_good_frame() {
        let a = encode_frame(b"first", 100).unwrap();
        let b = encode_frame(b"second", 100).unwrap();
        let mut chunk = a.clone();
        chunk.extend_from_slice(&b);
        let mut dec = FrameDecoder::new(100);
        assert_eq!(
            decode_all(&mut dec, &[&chunk]).unwrap(),
            vec![b"first".to_vec(), b"second".to_vec()]
        );

        // A good frame followed by an oversized header in the same chunk: the good
        // frame is delivered, then the error.
        let mut chunk = a;
        chunk.extend_from_slice(&101u32.to_be_bytes());
        chunk.extend_from_slice(&[0u8; 50]);
        let mut dec = FrameDecoder::new(100);
        let mut got = Vec::new();
        let res = dec.push(&chunk, |f| got.push(f));
        assert_eq!(got, vec![b"first".to_vec()]);
        assert_eq!(res, Err(FrameError::TooLarge { len: 101, max: 100 }));
    }

    #[test]
    fn encoder_limits() {
        assert_eq!(encode_frame(b"", 10), Err(FrameError::Empty));
        assert!(encode_frame(&[1u8; 10], 10).is_ok());
        assert_eq!(
            encode_frame(&[1u8; 11], 10),
            Err(FrameError::TooLarge { len: 11, max: 10 })
        );
        let max = vec![7u8; DEFAULT_MAX_PAYLOAD];
        assert_eq!(
            encode_frame(&max, DEFAULT_MAX_PAYLOAD).unwrap().len(),
            DEFAULT_MAX_PAYLOAD + 4
        );
        assert!(encode_frame(&[0u8; DEFAULT_MAX_PAYLOAD + 1], DEFAULT_MAX_PAYLOAD).is_err());
    }

    #[test]
    fn max_payload_validation() {
        assert!(validate_max_payload(0).is_err());
        assert!(validate_max_payload(1).is_ok());
        assert!(validate_max_payload(MAX_CONFIGURABLE_PAYLOAD).is_ok());
        assert!(validate_max_payload(MAX_CONFIGURABLE_PAYLOAD + 1).is_err());
    }

    #[test]
    fn one_mib_frames_roundtrip_when_configured() {
        let payload = vec![0x5au8; MAX_CONFIGURABLE_PAYLOAD];
        let frame = encode_frame(&payload, MAX_CONFIGURABLE_PAYLOAD).unwrap();
        let mut dec = FrameDecoder::new(MAX_CONFIGURABLE_PAYLOAD);
        let chunks: Vec<&[u8]> = frame.chunks(1350).collect();
        assert_eq!(decode_all(&mut dec, &chunks).unwrap(), vec![payload]);
    }
}
