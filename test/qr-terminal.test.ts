// The pairing QR code in a terminal (SPEC.md §7.1.8): the compact `CC1:` form (RFC 9285
// Base45 of fingerprint ‖ secret ‖ id ‖ port ‖ name), its strict parsing, and the
// half-block rendering with a 4-module quiet zone that fits 80 × 24. The rendered
// terminal text is turned back into pixels and decoded with jsQR (normal polarity only:
// dark modules on light) to the exact payload, and a Listener pairs over loopback with
// what the terminal shows.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'

import { DEFAULT_TERMINAL_SIZE, QR_QUIET_ZONE, renderQrForTerminal, terminalQr, terminalSize } from '../src/cli/qr-terminal.js'
import { Listener, MemoryTrustStore, Monitor, PairingRejectedError, generateIdentity, generateQrPairingSecret, type Identity } from '../src/index.js'
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
import { LOOPBACK } from './helpers.js'
import { decodeTerminal, stripAnsi } from './qr-decode.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

const cleanups: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined)
})

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

function monitorInput(name: string, over: Partial<QrPayloadInput> = {}, identity: Identity = generateIdentity()): QrPayloadInput {
  return {
    monitorId: identity.deviceId,
    monitorName: name,
    monitorCertFingerprint: identity.fingerprint,
    monitorPublicKey: identity.publicKey,
    pairingSecret: generateQrPairingSecret(),
    defaultPort: 48080,
    ...over,
  }
}

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

// SPEC.md §7.1.8 vectors (reproduced with an independent Base45 in Python).
const SPEC_VECTORS = [
  {
    input: {
      monitorCertFingerprint: 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90',
      pairingSecret: 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8',
      monitorId: '7c1f3a2e-8d4b-4f6a-9e0c-1b2d3e4f5a6b',
      defaultPort: 48080,
      monitorName: 'Nursery monitor',
    },
    carriedName: 'Nursery monitor',
    compact:
      'CC1:*JK2YOA3TG+0O95WN9+$DW6I*JK2YOA3TG+0O95WN9+$DW6I100KB0*M0DY0W016C1PN1:Y1I12$C2BO2UZ2423ND3.O3G 35VF:F7 %HZ1A5:JRJ3L*7HJBKXNF-94LE5$C3EFP$D5/DHWEO2',
  },
  {
    input: {
      monitorCertFingerprint: 'ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100',
      pairingSecret: '__79_Pv6-fj39vX08_Lx8O_u7ezr6uno5-bl5OPi4eA',
      monitorId: 'c0ffee00-1234-4abc-8def-0123456789ab',
      defaultPort: 443,
      monitorName: 'Chambre de bébé 👶',
    },
    carriedName: 'Chambre de bébé ',
    compact:
      'CC1:/FWZ1SRWNJIJB4F3ZA+K6W62/FWZ1SRWNJIJB4F3ZA+K6W62EGW+4WL%V2RVSFV94VZ$UGQU.EUN3U4$TUPTBET$2TI S:OS.HO/3UPD27K9K.HL60$Y88IH%90LN8BEC2KCDZC6VCA444XO%LC6HL',
  },
] as const

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

// ---------------------------------------------------------------------------
// Terminal rendering
// ---------------------------------------------------------------------------

const NAMES = [
  'A',
  'Nursery',
  'Nursery monitor',
  'Kinderzimmer',
  'Chambre de bébé 👶',
  '子供部屋のベビーモニター',
  '👶🏽👶🏽👶🏽👶🏽👶🏽',
  'e\u0301e\u0301e\u0301e\u0301e\u0301e\u0301e\u0301', // combining accents
  'The baby monitor in the upstairs nursery, east wing, by the door', // 64 characters
  'x'.repeat(64),
  '$%*+-./: "quoted" \\ tab\there',
]

describe('the QR code in a terminal', () => {
  it('a realistic monitor: the compact code fits 80 × 24 with a 4-module quiet zone and decodes to the exact payload', () => {
    const input = monitorInput('Nursery monitor')
    const json = buildQrPayload(input)
    const compact = buildCompactQrPayload(input)
    const shown = terminalQr(json, compact, { columns: 80, rows: 24 })
    expect(shown.form).toBe('compact')
    expect(shown.payload).toBe(compact)
    expect(shown.fits).toBe(true)
    expect(shown.columns).toBeLessThanOrEqual(80)
    expect(shown.rows).toBeLessThanOrEqual(23) // and the cursor's line: ≤ 24
    expect(shown.lines).toHaveLength(shown.rows)
    expect([shown.columns, shown.rows, shown.version, shown.errorCorrectionLevel]).toEqual([45, 23, 5, 'L'])
    for (const line of shown.lines) {
      expect([...line]).toHaveLength(shown.columns)
      expect(line).toMatch(/^[█▀▄ ]+$/)
    }
    // Quiet zone: 4 light modules on every side (2 full rows on top; the last line's
    // upper half is the 45th module row, its lower half is below the code).
    const width = shown.columns
    expect(width).toBe(37 + 2 * QR_QUIET_ZONE)
    expect(shown.lines.slice(0, 2)).toEqual(['█'.repeat(width), '█'.repeat(width)])
    expect(shown.lines.at(-2)).toBe('█'.repeat(width))
    expect(shown.lines.at(-1)).toBe('▀'.repeat(width))
    for (const line of shown.lines.slice(0, -1)) {
      expect(line.slice(0, QR_QUIET_ZONE)).toBe('████')
      expect(line.slice(-QR_QUIET_ZONE)).toBe('████')
    }

    const decoded = decodeTerminal(shown.lines)
    expect(decoded).toBe(compact)
    const { monitorPublicKey: _, ...fromJson } = parseQrPayload(json)
    expect(parseQrPayload(decoded as string)).toEqual(fromJson)
    // Inverted (the light-background misreading) is not what we print: dark on light decodes, its negative does not.
    const negative = shown.lines.map((l) => [...l].map((c) => ({ '█': ' ', ' ': '█', '▀': '▄', '▄': '▀' })[c] ?? c).join(''))
    expect(decodeTerminal(negative)).toBeUndefined()
  })

  it('every name (short, long, non-ASCII) fits 80 × 24 and round-trips through the rendered text', () => {
    const identity = generateIdentity()
    for (const name of NAMES) {
      for (const defaultPort of [1, 48080, 65_535]) {
        const input = monitorInput(name, { defaultPort }, identity)
        const compact = buildCompactQrPayload(input)
        const shown = terminalQr(buildQrPayload(input), compact)
        expect(shown.form, name).toBe('compact')
        expect(shown.fits, name).toBe(true)
        expect(shown.columns, name).toBeLessThanOrEqual(80)
        expect(shown.rows, name).toBeLessThanOrEqual(23)
        const decoded = decodeTerminal(shown.lines)
        expect(decoded, name).toBe(compact)
        const parsed = parseQrPayload(decoded as string)
        expect(parsed.monitorName, name).toBe(compactQrName(name))
        expect(parsed.service.defaultPort).toBe(defaultPort)
        expect(parsed.pairingSecret).toBe(input.pairingSecret)
      }
    }
  })

  it('random secrets and ids: always version 5 or less, always decodes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 100, maxLength: 100 }), (bytes) => {
        // 100 bytes of anything with a valid port and ASCII name: the largest compact form
        const b = Buffer.from(bytes)
        b.writeUInt16BE(Math.max(1, b.readUInt16BE(80)), 80)
        b.fill(0x41, 82)
        const compact = COMPACT_QR_PREFIX + encodeBase45(b)
        parseQrPayload(compact)
        const shown = renderQrForTerminal(compact, DEFAULT_TERMINAL_SIZE)
        expect(shown.version).toBeLessThanOrEqual(5)
        expect(shown.fits).toBe(true)
        expect(decodeTerminal(shown.lines)).toBe(compact)
      }),
      { numRuns: 30 },
    )
  })

  it('the JSON form when its code fits the terminal; the compact one when not; JSON when there is no compact form', () => {
    const input = monitorInput('Nursery monitor')
    const json = buildQrPayload(input)
    const compact = buildCompactQrPayload(input)
    const big = terminalQr(json, compact, { columns: 200, rows: 60 })
    expect(big.form).toBe('json')
    expect(big.fits).toBe(true)
    expect(big.rows).toBeLessThanOrEqual(59)
    expect(big.spareRows).toBe(59 - big.rows)
    expect(decodeTerminal(big.lines, 3)).toBe(json)
    // Not a TTY (no size): 80 × 24.
    expect(terminalQr(json, compact, terminalSize({})).form).toBe('compact')
    expect(terminalSize({})).toEqual({ columns: 80, rows: 24 })
    expect(terminalSize({ columns: 120, rows: 40 })).toEqual({ columns: 120, rows: 40 })
    expect(terminalSize({ columns: 0, rows: Number.NaN })).toEqual({ columns: 80, rows: 24 })
    // Too small even for the compact form: still drawn, and says so.
    const small = terminalQr(json, compact, { columns: 40, rows: 20 })
    expect([small.form, small.fits, small.spareRows]).toEqual(['compact', false, 0])
    expect(decodeTerminal(small.lines)).toBe(compact)
    // No compact form (no secret): the JSON code, not fitting.
    const { pairingSecret: _, ...noSecret } = input
    const legacy = terminalQr(buildQrPayload(noSecret), undefined)
    expect([legacy.form, legacy.fits]).toEqual(['json', false])
  })

  it('ansi: the same code in explicit colours (white on black), for light-background terminals', () => {
    const compact = SPEC_VECTORS[0].compact
    const plain = renderQrForTerminal(compact)
    const ansi = renderQrForTerminal(compact, { ansi: true })
    expect(ansi.lines.map(stripAnsi)).toEqual(plain.lines)
    for (const line of ansi.lines) expect(line).toMatch(/^\x1b\[97;40m[█▀▄ ]+\x1b\[0m$/)
    expect([ansi.columns, ansi.rows]).toEqual([plain.columns, plain.rows])
  })
})

// ---------------------------------------------------------------------------
// Pairing with what the terminal shows
// ---------------------------------------------------------------------------

describe('pairing with the compact form over loopback', () => {
  async function startMonitor(name: string): Promise<{ monitor: Monitor; store: MemoryTrustStore }> {
    const store = new MemoryTrustStore()
    const monitor = await Monitor.start({ host: LOOPBACK, port: 0, name, identity: generateIdentity(), trustStore: store })
    monitor.on('error', () => undefined)
    cleanups.push(() => monitor.close())
    return { monitor, store }
  }
  function newListener(): { listener: Listener; identity: Identity; store: MemoryTrustStore } {
    const identity = generateIdentity()
    const store = new MemoryTrustStore()
    const listener = new Listener({ identity, trustStore: store, name: 'Parent phone', endpoint: { handshakeTimeoutMs: 3000 } })
    cleanups.push(() => listener.close())
    return { listener, identity, store }
  }

  it('pairingQrCompact(): only while a window allows QR pairing; the payload of pairingQrPayload() without the key', async () => {
    const { monitor } = await startMonitor('Nursery monitor')
    expect(monitor.pairingQrCompact()).toBeUndefined()
    monitor.openPairing({ allowQr: false, onPin: () => undefined })
    expect(monitor.pairingQrCompact()).toBeUndefined()
    monitor.openPairing()
    const { monitorPublicKey: _, ...json } = parseQrPayload(monitor.pairingQrPayload())
    expect(parseQrPayload(monitor.pairingQrCompact() as string)).toEqual(json)
    expect(json.service.defaultPort).toBe(monitor.address.port)
    monitor.closePairing()
    expect(monitor.pairingQrCompact()).toBeUndefined()
  })

  it('a listener pairs with the text decoded from the terminal; both store each other', async () => {
    const { monitor, store: monitorStore } = await startMonitor('Nursery monitor')
    monitor.openPairing()
    const shown = terminalQr(monitor.pairingQrPayload(), monitor.pairingQrCompact(), { columns: 80, rows: 24 })
    expect(shown.form).toBe('compact')
    const scanned = decodeTerminal(shown.lines) as string
    expect(scanned).toBe(monitor.pairingQrCompact())
    const { listener, identity, store } = newListener()
    const entry = await listener.pairWithQr(scanned, { host: LOOPBACK, port: monitor.address.port })
    expect(entry).toMatchObject({ deviceId: monitor.deviceId, name: 'Nursery monitor', fingerprint: monitor.fingerprint, role: 'monitor' })
    expect(store.list()).toHaveLength(1)
    expect(monitorStore.list().map((e) => e.fingerprint)).toEqual([identity.fingerprint])
  })

  it('a long name is stored as the compact form carries it; a code of an earlier window pairs nobody', async () => {
    const name = 'The baby monitor upstairs'
    const { monitor, store: monitorStore } = await startMonitor(name)
    monitor.openPairing()
    const old = monitor.pairingQrCompact() as string
    monitor.openPairing() // a new window, a new secret
    const current = monitor.pairingQrCompact() as string
    expect(current).not.toBe(old)

    const stale = newListener()
    const err = await stale.listener.pairWithQr(old, { host: LOOPBACK, port: monitor.address.port }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(PairingRejectedError)
    expect(monitorStore.list()).toHaveLength(0)

    const { listener } = newListener()
    const entry = await listener.pairWithQr(current, { host: LOOPBACK, port: monitor.address.port })
    expect(entry.name).toBe('The baby monitor u')
    expect(entry.name).toBe(compactQrName(name))
    expect(monitorStore.list()).toHaveLength(1)
  })

  it('the port comes from the compact form when the target has none', async () => {
    const { monitor } = await startMonitor('Nursery')
    monitor.openPairing()
    const { listener } = newListener()
    const entry = await listener.pairWithQr(monitor.pairingQrCompact() as string, { host: LOOPBACK })
    expect(entry.deviceId).toBe(monitor.deviceId)
  })
})

it('fresh randomness: two compact forms of one monitor differ only by the secret', () => {
  const identity = generateIdentity()
  const a = parseQrPayload(buildCompactQrPayload(monitorInput('Nursery', {}, identity)))
  const b = parseQrPayload(buildCompactQrPayload(monitorInput('Nursery', { pairingSecret: randomBytes(32).toString('base64url') }, identity)))
  expect({ ...a, pairingSecret: '' }).toEqual({ ...b, pairingSecret: '' })
  expect(a.pairingSecret).not.toBe(b.pairingSecret)
})
