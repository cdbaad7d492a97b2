/**
 * Formats of the identifiers every layer handles (SPEC.md §1), declared once.
 *
 * - Fingerprint: SHA-256 of a certificate's DER, 64 lowercase hex digits (what
 *   `native/core/src/identity.rs` `fingerprint_hex` writes; test/one-source.test.ts
 *   checks the two agree).
 * - Device id: an RFC 4122 UUID in textual form. On the wire either case is accepted
 *   (other implementations may send uppercase); this library writes and stores lowercase.
 */

/** JSON Schema / RegExp source of a fingerprint. */
export const FINGERPRINT_PATTERN = '^[0-9a-f]{64}$'
/** A canonical fingerprint (no `g` flag: safe to share). */
export const FINGERPRINT_RE = new RegExp(FINGERPRINT_PATTERN)

/** JSON Schema / RegExp source of a device id as accepted on the wire (either case). */
export const DEVICE_ID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
/** A device id as this library stores it (lowercase). */
export const STORED_DEVICE_ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** A fingerprint in its canonical form (64 lowercase hex digits). */
export function isFingerprint(value: unknown): value is string {
  return typeof value === 'string' && FINGERPRINT_RE.test(value)
}

/**
 * A fingerprint as people paste it (either case, optionally `aa:bb:…` colon-separated)
 * in its canonical form, or undefined when it is not one.
 */
export function parseFingerprint(value: string): string | undefined {
  const fp = value.replace(/:/g, '').toLowerCase()
  return isFingerprint(fp) ? fp : undefined
}

/** A device id in the form this library stores (lowercase UUID). */
export function isStoredDeviceId(value: unknown): value is string {
  return typeof value === 'string' && STORED_DEVICE_ID_RE.test(value)
}
