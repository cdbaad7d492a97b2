// The pairing QR code in a terminal (SPEC.md §7.1.8): the compact `CC1:` form (RFC 9285
// Base45 of fingerprint ‖ secret ‖ id ‖ port ‖ name) and its strict parsing, checked
// against the SPEC's vectors. The half-block rendering is in qr-terminal-render.test.ts,
// pairing with what the terminal shows in qr-terminal-pairing.test.ts.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import fc from 'fast-check'
import { describe, expect, it } from 'vitest'

import { generateIdentity } from '../src/index.js'
import { BASE45_ALPHABET, base45Length, decodeBase45, encodeBase45 } from '../src/pairing/base45.js'
import {
  COMPACT_QR_MAX_LENGTH,
  COMPACT_QR_NAME_MAX_BYTES,
  COMPACT_QR_PREFIX,
  QrPayloadError,
  buildCompactQrPayload,
  buildQrPayload,
  compactQrName,
  parseQrPayload,
  type QrPayloadInput,
} from '../src/pairing/qr.js'
import { SPEC_VECTORS, monitorInput } from './qr-terminal-helpers.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

function badQr(text: string | Uint8Array): QrPayloadError {
  let err: unknown
  try {
    parseQrPayload(text)
  } catch (e) {
    err = e
  }
  expect(err, typeof text === 'string' ? JSON.stringify(text) : 'bytes').toBeInstanceOf(QrPayloadError)
  expect(err).toMatchObject({ code: 'ERR_BAD_QR' })
  return err as QrPayloadError
}

/** Raw compact bytes with any content (bypassing the builder's checks). */
function rawCompact(parts: { fp?: Buffer; secret?: Buffer; id?: Buffer; port?: number; name?: Buffer }): string {
  const port = Buffer.alloc(2)
  port.writeUInt16BE(parts.port ?? 48080)
  const bytes = Buffer.concat([
    parts.fp ?? Buffer.alloc(32, 0xab),
    parts.secret ?? Buffer.alloc(32, 7),
    parts.id ?? Buffer.from('7c1f3a2e8d4b4f6a9e0c1b2d3e4f5a6b', 'hex'),
    port,
    parts.name ?? Buffer.from('Nursery', 'utf8'),
  ])
  return COMPACT_QR_PREFIX + encodeBase45(bytes)
}

// ---------------------------------------------------------------------------
// Base45 (RFC 9285)
// ---------------------------------------------------------------------------

describe('Base45 (RFC 9285)', () => {
  it('the RFC examples (§4.3, §4.4) and the edge values', () => {
    const ascii = (s: string): Uint8Array => Buffer.from(s, 'latin1')
    expect(encodeBase45(ascii('AB'))).toBe('BB8')
    expect(encodeBase45(ascii('Hello!!'))).toBe('%69 VD92EX0')
    expect(encodeBase45(ascii('base-45'))).toBe('UJCLQE7W581')
    expect(encodeBase45(ascii('ietf!'))).toBe('QED8WEX0')
    expect(Buffer.from(decodeBase45('QED8WEX0')).toString('latin1')).toBe('ietf!')
    for (const [bytes, text] of [
      [[], ''],
      [[0], '00'],
      [[0xff], 'U5'],
      [[0, 0], '000'],
      [[0xff, 0xff], 'FGW'],
    ] as const) {
      expect(encodeBase45(Uint8Array.from(bytes))).toBe(text)
      expect([...decodeBase45(text)]).toEqual(bytes)
    }
    expect(BASE45_ALPHABET).toHaveLength(45)
  })

  it('decoding is strict: 3k+1 lengths, characters outside the alphabet, groups over 65535 / 255', () => {
    for (const bad of ['A', 'BB8A', 'GGW', 'ZZZ', 'ZZ', 'V5', 'bb8', 'BB#', 'BB\n', 'BBé', '\u0000\u0000']) {
      expect(() => decodeBase45(bad), JSON.stringify(bad)).toThrow(RangeError)
    }
  })

  it('round-trips any bytes, with the length base45Length says and one spelling', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (bytes) => {
        const text = encodeBase45(bytes)
        expect(text).toHaveLength(base45Length(bytes.length))
        expect(text).toMatch(/^[0-9A-Z $%*+\-./:]*$/)
        expect(text.endsWith(' ')).toBe(false) // nothing for a copy from a terminal to drop
        expect([...decodeBase45(text)]).toEqual([...bytes])
      }),
    )
    // Injective: every valid text is the encoding of what it decodes to.
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...BASE45_ALPHABET), { maxLength: 30 }), (chars) => {
        const text = chars.join('')
        let bytes: Uint8Array
        try {
          bytes = decodeBase45(text)
        } catch {
          return
        }
        expect(encodeBase45(bytes)).toBe(text)
      }),
    )
  })
})

// ---------------------------------------------------------------------------
// The compact form
// ---------------------------------------------------------------------------

describe('the compact QR form (SPEC §7.1.8)', () => {
  it('the SPEC vectors, verbatim in SPEC.md', () => {
    const spec = readFileSync(path.join(root, 'SPEC.md'), 'utf8')
    for (const v of SPEC_VECTORS) {
      expect(buildCompactQrPayload(v.input)).toBe(v.compact)
      expect(parseQrPayload(v.compact)).toEqual({
        type: 'monitor_pair_v1',
        monitorId: v.input.monitorId,
        monitorName: v.carriedName,
        monitorCertFingerprint: v.input.monitorCertFingerprint,
        pairingSecret: v.input.pairingSecret,
        service: { protocol: 'baby-monitor', version: 1, defaultPort: v.input.defaultPort },
      })
      expect(spec).toContain(v.compact)
      expect(spec).toContain(v.input.pairingSecret)
    }
    expect(SPEC_VECTORS[1].compact).toHaveLength(COMPACT_QR_MAX_LENGTH)
    expect(COMPACT_QR_MAX_LENGTH).toBe(154)
  })

  it('parses to the JSON form’s object without monitorPublicKey; built from the input or from the parsed payload alike', () => {
    const input = monitorInput('Nursery monitor')
    const json = buildQrPayload(input)
    const compact = buildCompactQrPayload(input)
    const { monitorPublicKey, ...rest } = parseQrPayload(json)
    expect(monitorPublicKey).toBe(input.monitorPublicKey)
    expect(parseQrPayload(compact)).toEqual(rest)
    expect(parseQrPayload(Buffer.from(compact, 'latin1'))).toEqual(rest) // bytes as a scanner returns them
    expect(buildCompactQrPayload(parseQrPayload(json))).toBe(compact)
    expect(buildCompactQrPayload(parseQrPayload(compact))).toBe(compact)
  })

  it('any valid payload round-trips; the name is cut to whole code points within 18 bytes', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uuid(),
        fc.integer({ min: 1, max: 65_535 }),
        fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }).filter((s) => [...s].length <= 64),
        (fp, secret, id, port, name) => {
          const input: QrPayloadInput = {
            monitorCertFingerprint: Buffer.from(fp).toString('hex'),
            pairingSecret: Buffer.from(secret).toString('base64url'),
            monitorId: id,
            defaultPort: port,
            monitorName: name,
          }
          const compact = buildCompactQrPayload(input)
          expect(compact.length).toBeLessThanOrEqual(COMPACT_QR_MAX_LENGTH)
          const parsed = parseQrPayload(compact)
          const carried = compactQrName(name)
          expect(parsed).toEqual({ ...parseQrPayload(buildQrPayload({ ...input, monitorName: carried })) })
          expect(name.startsWith(carried)).toBe(true)
          expect(Buffer.byteLength(carried)).toBeLessThanOrEqual(COMPACT_QR_NAME_MAX_BYTES)
          // the longest such prefix: the next code point would not fit
          const next = [...name][[...carried].length]
          if (next !== undefined) expect(Buffer.byteLength(carried + next)).toBeGreaterThan(COMPACT_QR_NAME_MAX_BYTES)
        },
      ),
      { numRuns: 200 },
    )
  })

  it('strict: wrong prefix, bad Base45, wrong lengths, trailing garbage, bad UTF-8, rule breaks — ERR_BAD_QR, secret not echoed', () => {
    const good = SPEC_VECTORS[0].compact // 97 bytes
    const full = SPEC_VECTORS[1].compact // 100 bytes (the maximum)
    const body = good.slice(COMPACT_QR_PREFIX.length)
    const cases: Array<[string, string | Uint8Array, RegExp]> = [
      ['lowercase prefix', `cc1:${body}`, /JSON/],
      ['other version', `CC2:${body}`, /JSON/],
      ['no colon', `CC1${body}`, /JSON/],
      ['leading blank', ` ${good}`, /JSON/],
      ['lowercase Base45', `CC1:${body.toLowerCase()}`, /Base45/],
      ['character outside the alphabet', `CC1:${body.slice(0, 10)}#${body.slice(11)}`, /Base45/],
      ['non-ASCII character', `CC1:${body.slice(0, 10)}é${body.slice(11)}`, /Base45/],
      ['non-ASCII byte', Buffer.concat([Buffer.from(good.slice(0, 20), 'latin1'), Buffer.from([0xa0]), Buffer.from(good.slice(21), 'latin1')]), /Base45/],
      ['trailing newline', `${good}\n`, /Base45/],
      ['trailing blank', `${good} `, /Base45/],
      ['trailing garbage (3k+1)', `${good}00`, /Base45/],
      ['trailing garbage (too long)', `${full}000`, /bytes/],
      ['3-character group over 65535', `CC1:GGW${body.slice(3)}`, /Base45/],
      ['final group over 255', `${good.slice(0, -2)}ZZ`, /Base45/],
      ['prefix only', COMPACT_QR_PREFIX, /bytes/],
      ['no name (82 bytes)', COMPACT_QR_PREFIX + encodeBase45(Buffer.alloc(82, 1)), /bytes/],
      ['101 bytes', rawCompact({ name: Buffer.alloc(19, 0x41) }), /bytes/],
      ['truncated UTF-8 name', rawCompact({ name: Buffer.from([0x41, 0xc3]) }), /UTF-8/],
      ['overlong UTF-8', rawCompact({ name: Buffer.from([0xc0, 0xaf]) }), /UTF-8/],
      ['UTF-8 surrogate', rawCompact({ name: Buffer.from([0xed, 0xa0, 0x80]) }), /UTF-8/],
      ['port 0', rawCompact({ port: 0 }), /defaultPort/],
    ]
    for (const [what, text, message] of cases) {
      const err = badQr(text)
      expect(err.message, what).toMatch(message)
      expect(err.message, what).not.toContain(body.slice(0, 20))
    }
    // the helper itself makes valid payloads
    expect(parseQrPayload(rawCompact({ name: Buffer.alloc(18, 0x41) })).monitorName).toBe('A'.repeat(18))
  })

  it('the builder refuses what the compact form cannot carry faithfully', () => {
    const input = monitorInput('Nursery')
    const { pairingSecret: _, ...noSecret } = input
    for (const [what, bad, message] of [
      ['no secret', noSecret, /pairingSecret/],
      ['upper-case monitorId', { ...input, monitorId: input.monitorId.toUpperCase() }, /lowercase monitorId/],
      ['upper-case fingerprint', { ...input, monitorCertFingerprint: input.monitorCertFingerprint.toUpperCase() }, /monitorCertFingerprint/],
      ['empty name', { ...input, monitorName: '' }, /monitorName/],
      ['lone surrogate', { ...input, monitorName: 'Nursery \ud800' }, /surrogate/],
      ['port 0', { ...input, defaultPort: 0 }, /defaultPort/],
    ] as const) {
      expect(() => buildCompactQrPayload(bad), what).toThrow(message)
    }
  })
})

it('fresh randomness: two compact forms of one monitor differ only by the secret', () => {
  const identity = generateIdentity()
  const a = parseQrPayload(buildCompactQrPayload(monitorInput('Nursery', {}, identity)))
  const b = parseQrPayload(buildCompactQrPayload(monitorInput('Nursery', { pairingSecret: randomBytes(32).toString('base64url') }, identity)))
  expect({ ...a, pairingSecret: '' }).toEqual({ ...b, pairingSecret: '' })
  expect(a.pairingSecret).not.toBe(b.pairingSecret)
})
