// The pairing QR code in a terminal (SPEC.md §7.1.8): the half-block rendering with a
// 4-module quiet zone that fits 80 × 24. The rendered terminal text is turned back into
// pixels and decoded with jsQR (normal polarity only: dark modules on light) to the exact
// payload.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'

import { DEFAULT_TERMINAL_SIZE, QR_QUIET_ZONE, renderQrForTerminal, terminalQr, terminalSize } from '../src/cli/qr-terminal.js'
import { generateIdentity } from '../src/index.js'
import { encodeBase45 } from '../src/pairing/base45.js'
import {
  COMPACT_QR_PREFIX,
  buildCompactQrPayload,
  buildQrPayload,
  compactQrName,
  parseQrPayload,
} from '../src/pairing/qr.js'
import { decodeTerminal, stripAnsi } from './qr-decode.js'
import { SPEC_VECTORS, monitorInput } from './qr-terminal-helpers.js'

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
