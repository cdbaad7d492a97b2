// Base45 (RFC 9285): bytes as text in the QR alphanumeric character set, used by the
// compact pairing QR form (SPEC.md §7.1.8). Every two bytes become three characters,
// a last single byte two; decoding is strict, so each byte string has exactly one
// spelling.

/** The RFC 9285 alphabet: value i is character i (the QR alphanumeric set). */
export const BASE45_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:'

const VALUE = new Int8Array(128).fill(-1)
for (let i = 0; i < BASE45_ALPHABET.length; i++) VALUE[BASE45_ALPHABET.charCodeAt(i)] = i

/** Characters Base45 writes for `byteLength` bytes. */
export function base45Length(byteLength: number): number {
  return 3 * Math.floor(byteLength / 2) + 2 * (byteLength % 2)
}

/** RFC 9285 §4 encoding. */
export function encodeBase45(bytes: Uint8Array): string {
  let out = ''
  let i = 0
  for (; i + 1 < bytes.length; i += 2) {
    let n = (bytes[i] as number) * 256 + (bytes[i + 1] as number)
    const c = n % 45
    n = (n - c) / 45
    const d = n % 45
    const e = (n - d) / 45
    out += BASE45_ALPHABET.charAt(c) + BASE45_ALPHABET.charAt(d) + BASE45_ALPHABET.charAt(e)
  }
  if (i < bytes.length) {
    const n = bytes[i] as number
    const c = n % 45
    out += BASE45_ALPHABET.charAt(c) + BASE45_ALPHABET.charAt((n - c) / 45)
  }
  return out
}

/**
 * RFC 9285 §4 decoding, strict (§6): throws a RangeError for a character outside the
 * alphabet, a length of 3k+1, or a group worth more than its bytes can hold (a
 * three-character group over 65535, a final two-character group over 255).
 */
export function decodeBase45(text: string): Uint8Array {
  if (text.length % 3 === 1) throw new RangeError(`Base45 text of ${text.length} characters (3k+1 is not a length Base45 writes)`)
  const out = new Uint8Array(Math.floor(text.length / 3) * 2 + (text.length % 3 === 2 ? 1 : 0))
  const value = (at: number): number => {
    const code = text.charCodeAt(at)
    const v = code < 128 ? (VALUE[code] as number) : -1
    if (v < 0) throw new RangeError(`invalid Base45 character at ${at}`)
    return v
  }
  let o = 0
  let i = 0
  for (; i + 2 < text.length; i += 3) {
    const n = value(i) + value(i + 1) * 45 + value(i + 2) * 2025
    if (n > 0xffff) throw new RangeError(`Base45 group at ${i} is worth ${n} (more than 65535)`)
    out[o++] = n >> 8
    out[o++] = n & 0xff
  }
  if (i < text.length) {
    const n = value(i) + value(i + 1) * 45
    if (n > 0xff) throw new RangeError(`final Base45 group at ${i} is worth ${n} (more than 255)`)
    out[o] = n
  }
  return out
}
