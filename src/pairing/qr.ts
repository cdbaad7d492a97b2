// The monitor's pairing QR code: `monitor_pair_v1`, canonical JSON (SPEC.md §7.1).
import { Type, type Static } from '@sinclair/typebox'
import { Ajv } from 'ajv'
import { canonicalString } from '../protocol/canonical.js'
import { Base64Url32, DeviceId, Fingerprint, LIMITS } from '../protocol/messages.js'
import { MalformedJsonError, parseStrictJson } from '../protocol/strict-json.js'
import { CribcallError } from '../transport/errors.js'

export const DEFAULT_MONITOR_PORT = 48080

export const QrPayloadSchema = Type.Object(
  {
    type: Type.Literal('monitor_pair_v1'),
    monitorId: DeviceId,
    monitorName: Type.String({ minLength: 1, maxLength: LIMITS.nameMax }),
    monitorCertFingerprint: Fingerprint,
    monitorPublicKey: Type.Optional(
      Type.String({ minLength: 4, maxLength: LIMITS.publicKeyMax, pattern: '^[A-Za-z0-9+/]+={0,2}$' }),
    ),
    /**
     * The pairing window's one-time secret (32 random bytes, unpadded base64url). A
     * listener proves it read the QR code with `PAIR_REQUEST.pairingProof`. Absent in
     * the QR codes of monitors that predate it (the listener then sends no proof).
     */
    pairingSecret: Type.Optional(Base64Url32),
    service: Type.Object(
      {
        protocol: Type.Literal('baby-monitor'),
        version: Type.Literal(1),
        defaultPort: Type.Integer({ minimum: 1, maximum: 65_535 }),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false, $id: 'monitor_pair_v1' },
)

export type QrPayload = Static<typeof QrPayloadSchema>

export class QrPayloadError extends CribcallError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_BAD_QR', message, options)
    this.name = 'QrPayloadError'
  }
}

const validate = new Ajv({ strict: true, unicodeRegExp: true }).compile(QrPayloadSchema)

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
 * Parses scanned QR text strictly: strict JSON (no duplicate members, no BOM, …), every
 * member known and well-typed. Throws {@link QrPayloadError}.
 */
export function parseQrPayload(text: string | Uint8Array): QrPayload {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text
  if (bytes.length > 4096) throw new QrPayloadError('QR payload is too long')
  let value: unknown
  try {
    value = parseStrictJson(bytes, { maxDepth: 4 })
  } catch (e) {
    if (e instanceof MalformedJsonError) throw new QrPayloadError(`QR payload is not valid JSON (${e.reason})`, { cause: e })
    throw e
  }
  if (!validate(value)) throw new QrPayloadError(`QR payload rejected: ${describeAjv(validate.errors)}`)
  return value
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
