// The monitor's pairing QR code: `monitor_pair_v1`, canonical JSON (SPEC.md §7.1).
import type { Static } from '@sinclair/typebox'
import { canonicalString } from '../protocol/canonical.js'
import type { QrPayloadSchema } from '../protocol/message-schemas.js'
import { validateQrPayload as validate } from '../protocol/messages.js'
import { MalformedJsonError, parseStrictJson } from '../protocol/strict-json.js'
import { CribcallError } from '../transport/errors.js'

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
