// The monitor's pairing QR code: `monitor_pair_v1`, canonical JSON (SPEC.md §7.1), and
// its compact form `CC1:` + Base45 (SPEC.md §7.1.8) for screens where the JSON QR code
// does not fit (a terminal).
import type { Static } from '@sinclair/typebox'
import { canonicalString } from '../protocol/canonical.js'
import type { QrPayloadSchema } from '../protocol/message-schemas.js'
import { validateQrPayload as validate } from '../protocol/messages.js'
import { MalformedJsonError, parseStrictJson } from '../protocol/strict-json.js'
import { CribcallError } from '../transport/errors.js'
import { base45Length, decodeBase45, encodeBase45 } from './base45.js'

export const DEFAULT_MONITOR_PORT = 48080

export type QrPayload = Static<typeof QrPayloadSchema>

export class QrPayloadError extends CribcallError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_BAD_QR', message, options)
    this.name = 'QrPayloadError'
  }
}


export interface QrPayloadInput {
  readonly monitorId: string
  readonly monitorName: string
  readonly monitorCertFingerprint: string
  readonly monitorPublicKey?: string
  readonly defaultPort?: number
  /** The pairing window's secret (unpadded base64url of 32 bytes). */
  readonly pairingSecret?: string
}

/** The canonical `monitor_pair_v1` JSON text a monitor shows as its QR code. */
export function buildQrPayload(input: QrPayloadInput): string {
  const payload: QrPayload = {
    type: 'monitor_pair_v1',
    monitorId: input.monitorId,
    monitorName: input.monitorName,
    monitorCertFingerprint: input.monitorCertFingerprint,
    ...(input.monitorPublicKey === undefined ? {} : { monitorPublicKey: input.monitorPublicKey }),
    ...(input.pairingSecret === undefined ? {} : { pairingSecret: input.pairingSecret }),
    service: { protocol: 'baby-monitor', version: 1, defaultPort: input.defaultPort ?? DEFAULT_MONITOR_PORT },
  }
  if (!validate(payload)) throw new QrPayloadError(`invalid QR payload: ${describeAjv(validate.errors)}`)
  return canonicalString(payload)
}

/**
 * Parses scanned QR text strictly, in either form (SPEC §7.1): the canonical JSON (strict
 * JSON — no duplicate members, no BOM, … — every member known and well-typed) or the
 * compact `CC1:` form (exact prefix, valid Base45, exact length, the same field rules).
 * The compact form gives the same object as the JSON form without `monitorPublicKey`.
 * Throws {@link QrPayloadError}.
 */
export function parseQrPayload(text: string | Uint8Array): QrPayload {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text
  if (bytes.length > 4096) throw new QrPayloadError('QR payload is too long')
  if (startsWithCompactPrefix(bytes)) return parseCompactQrPayload(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1'))
  let value: unknown
  try {
    value = parseStrictJson(bytes, { maxDepth: 4 })
  } catch (e) {
    if (e instanceof MalformedJsonError) throw new QrPayloadError(`QR payload is not valid JSON (${e.reason})`, { cause: e })
    throw e
  }
  if (!validate(value)) throw new QrPayloadError(`QR payload rejected: ${describeAjv(validate.errors)}`)
  return value as QrPayload
}

function describeAjv(errors: typeof validate.errors): string {
  const e = errors?.[0]
  if (e === undefined) return 'invalid'
  const extra =
    e.keyword === 'additionalProperties'
      ? ` '${String((e.params as { additionalProperty?: string }).additionalProperty)}'`
      : ''
  return `${e.instancePath === '' ? '' : `${e.instancePath}: `}${e.message ?? e.keyword}${extra}`
}

// ---------------------------------------------------------------------------
// The compact form (SPEC §7.1.8): "CC1:" + Base45(fingerprint ‖ secret ‖ id ‖ port ‖ name)
// ---------------------------------------------------------------------------

/** The compact form's prefix (QR alphanumeric characters, like the Base45 that follows). */
export const COMPACT_QR_PREFIX = 'CC1:'
/** At most this many UTF-8 bytes of `monitorName` (whole code points) are in the compact form. */
export const COMPACT_QR_NAME_MAX_BYTES = 18
/** fingerprint 32 + pairingSecret 32 + monitorId 16 + defaultPort 2. */
const COMPACT_FIXED_BYTES = 82
/** The longest compact text: 154 characters, QR version 5 at level L in alphanumeric mode. */
export const COMPACT_QR_MAX_LENGTH = COMPACT_QR_PREFIX.length + base45Length(COMPACT_FIXED_BYTES + COMPACT_QR_NAME_MAX_BYTES)

const PREFIX_BYTES = Buffer.from(COMPACT_QR_PREFIX, 'latin1')
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const LONE_SURROGATE = /\p{Cs}/u

function startsWithCompactPrefix(bytes: Uint8Array): boolean {
  return bytes.length >= PREFIX_BYTES.length && PREFIX_BYTES.every((b, i) => bytes[i] === b)
}

/**
 * `name` cut to the longest prefix of whole code points whose UTF-8 has at most
 * {@link COMPACT_QR_NAME_MAX_BYTES} bytes: the `monitorName` a listener gets from the
 * compact form (SPEC §7.1.8).
 */
export function compactQrName(name: string): string {
  let bytes = 0
  let end = 0
  for (const cp of name) {
    const n = Buffer.byteLength(cp, 'utf8')
    if (bytes + n > COMPACT_QR_NAME_MAX_BYTES) break
    bytes += n
    end += cp.length
  }
  return name.slice(0, end)
}

/**
 * The compact QR text (`CC1:` + Base45, SPEC §7.1.8) of the same inputs as
 * {@link buildQrPayload}, or of a parsed {@link QrPayload}. It needs `pairingSecret` and
 * a lowercase `monitorId`; `monitorPublicKey` is left out and a `monitorName` longer
 * than 18 UTF-8 bytes is cut ({@link compactQrName}). At most 154 characters: a
 * version 5 (37 × 37) QR code at error correction level L. Throws {@link QrPayloadError}.
 */
export function buildCompactQrPayload(input: QrPayloadInput | QrPayload): string {
  const defaultPort = 'service' in input ? input.service.defaultPort : (input.defaultPort ?? DEFAULT_MONITOR_PORT)
  const payload: QrPayload = {
    type: 'monitor_pair_v1',
    monitorId: input.monitorId,
    monitorName: input.monitorName,
    monitorCertFingerprint: input.monitorCertFingerprint,
    ...(input.pairingSecret === undefined ? {} : { pairingSecret: input.pairingSecret }),
    service: { protocol: 'baby-monitor', version: 1, defaultPort },
  }
  // The field rules are the JSON form's (one source); then what the compact form adds.
  if (!validate(payload)) throw new QrPayloadError(`invalid QR payload: ${describeAjv(validate.errors)}`)
  if (payload.pairingSecret === undefined) throw new QrPayloadError('the compact QR form needs a pairingSecret (an open pairing window that allows QR pairing)')
  if (payload.monitorId !== payload.monitorId.toLowerCase()) {
    // The compact form decodes to the lowercase id, which the pairing proof then binds (§7.1.2).
    throw new QrPayloadError('the compact QR form needs a lowercase monitorId')
  }
  if (LONE_SURROGATE.test(payload.monitorName)) throw new QrPayloadError('monitorName is not well-formed Unicode (a lone surrogate)')
  const name = Buffer.from(compactQrName(payload.monitorName), 'utf8')
  const bytes = Buffer.alloc(COMPACT_FIXED_BYTES + name.length)
  Buffer.from(payload.monitorCertFingerprint, 'hex').copy(bytes, 0)
  Buffer.from(payload.pairingSecret, 'base64url').copy(bytes, 32)
  Buffer.from(payload.monitorId.replace(/-/g, ''), 'hex').copy(bytes, 64)
  bytes.writeUInt16BE(defaultPort, 80)
  name.copy(bytes, COMPACT_FIXED_BYTES)
  return COMPACT_QR_PREFIX + encodeBase45(bytes)
}

function parseCompactQrPayload(text: string): QrPayload {
  let bytes: Uint8Array
  try {
    bytes = decodeBase45(text.slice(COMPACT_QR_PREFIX.length))
  } catch (e) {
    throw new QrPayloadError(`compact QR payload is not valid Base45 (${(e as Error).message})`, { cause: e })
  }
  if (bytes.length <= COMPACT_FIXED_BYTES || bytes.length > COMPACT_FIXED_BYTES + COMPACT_QR_NAME_MAX_BYTES) {
    throw new QrPayloadError(
      `compact QR payload has ${bytes.length} bytes (expected ${COMPACT_FIXED_BYTES + 1} to ${COMPACT_FIXED_BYTES + COMPACT_QR_NAME_MAX_BYTES})`,
    )
  }
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let monitorName: string
  try {
    monitorName = UTF8.decode(b.subarray(COMPACT_FIXED_BYTES))
  } catch (e) {
    throw new QrPayloadError('compact QR payload: monitorName is not valid UTF-8', { cause: e })
  }
  const id = b.toString('hex', 64, 80)
  const value: QrPayload = {
    type: 'monitor_pair_v1',
    monitorId: `${id.slice(0, 8)}-${id.slice(8, 12)}-${id.slice(12, 16)}-${id.slice(16, 20)}-${id.slice(20)}`,
    monitorName,
    monitorCertFingerprint: b.toString('hex', 0, 32),
    pairingSecret: b.toString('base64url', 32, 64),
    service: { protocol: 'baby-monitor', version: 1, defaultPort: b.readUInt16BE(80) },
  }
  if (!validate(value)) throw new QrPayloadError(`compact QR payload rejected: ${describeAjv(validate.errors)}`)
  return value
}
