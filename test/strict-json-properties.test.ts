// src/protocol/strict-json.ts: property tests of strict RFC 8259 parsing (canonical round
// trips, agreement with JSON.parse, arbitrary bytes).
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { canonicalBytes } from '../src/protocol/canonical.js'
import { MalformedJsonError, parseStrictJson } from '../src/protocol/strict-json.js'
import { bytes, enc, expectSame } from './strict-json-helpers.js'

type Json = null | boolean | number | string | Json[] | { [k: string]: Json }

/**
 * The value as it survives a canonical round trip: -0 becomes 0, `__proto__` members
 * are dropped (refused on both sides), integral doubles in [2^53, 1e21) (which the
 * canonicalizer refuses) are clamped to the safe range, objects get Object.prototype.
 */
function normalize(v: unknown): Json {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return v
  if (typeof v === 'number') {
    if (Object.is(v, -0)) return 0
    if (Number.isInteger(v) && !Number.isSafeInteger(v) && Math.abs(v) < 1e21) {
      return v > 0 ? Number.MAX_SAFE_INTEGER : Number.MIN_SAFE_INTEGER
    }
    return v
  }
  if (Array.isArray(v)) return v.map(normalize)
  const out: { [k: string]: Json } = {}
  for (const k of Object.keys(v as object)) {
    if (k === '__proto__') continue
    Object.defineProperty(out, k, {
      value: normalize((v as Record<string, unknown>)[k]),
      writable: true,
      enumerable: true,
      configurable: true,
    })
  }
  return out
}

const keyArb = fc.string({ unit: 'binary', maxLength: 10 })
const memberArb = fc.oneof(
  fc.jsonValue({ maxDepth: 4, stringUnit: 'binary' }),
  fc.maxSafeInteger(),
  fc.array(fc.maxSafeInteger(), { maxLength: 4 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(
    Number.MAX_SAFE_INTEGER,
    Number.MIN_SAFE_INTEGER,
    -0,
    5e-324,
    Number.MAX_VALUE,
    1e21,
    0.1,
    '\u0000\u001f"\\/\u2028',
    '\uD83D\uDE02',
  ),
)
const topLevelArb = fc.dictionary(keyArb, memberArb, { maxKeys: 8 })

describe('properties', () => {
  it('parseStrictJson(canonicalBytes(v)) deep-equals v and re-canonicalizes to the same bytes (20,000 runs)', () => {
    fc.assert(
      fc.property(topLevelArb, (raw) => {
        const v = normalize(raw)
        const out = canonicalBytes(v)
        const parsed = parseStrictJson(out)
        expectSame(parsed, v)
        expectSame(parsed, JSON.parse(new TextDecoder().decode(out)))
        expect(Buffer.from(canonicalBytes(parsed)).equals(Buffer.from(out))).toBe(true)
      }),
      { numRuns: 20_000 },
    )
  })

  it('agrees with JSON.parse on arbitrary valid JSON text (whitespace, escapes, ordering)', () => {
    const textArb = fc
      .tuple(fc.json({ maxDepth: 4, stringUnit: 'binary' }), fc.constantFrom('', ' ', '\n', '\t', '\r\n  '))
      .map(([json, ws]) => `${ws}{${ws}"v"${ws}:${ws}${json}${ws}}${ws}`)
    fc.assert(
      fc.property(textArb, (text) => {
        const expected: unknown = JSON.parse(text)
        let got: unknown
        try {
          got = parseStrictJson(enc.encode(text))
        } catch (e) {
          // The only valid-JSON inputs we refuse are those the protocol forbids.
          expect(e).toBeInstanceOf(MalformedJsonError)
          expect(['NUMBER_OUT_OF_RANGE', 'FORBIDDEN_KEY', 'LONE_SURROGATE']).toContain((e as MalformedJsonError).reason)
          return
        }
        expectSame(got, expected)
      }),
      { numRuns: 5_000 },
    )
  })

  it('arbitrary bytes either parse to an object or throw MalformedJsonError, nothing else', () => {
    const prefixArb = fc.constantFrom('', '{', '{"a":', '{"a":"', '{"a":[', '{"a":1')
    fc.assert(
      fc.property(prefixArb, fc.uint8Array({ maxLength: 64 }), (prefix, tail) => {
        const payload = bytes(prefix, [...tail])
        try {
          const v = parseStrictJson(payload)
          expect(typeof v === 'object' && v !== null && !Array.isArray(v)).toBe(true)
        } catch (e) {
          expect(e).toBeInstanceOf(MalformedJsonError)
        }
      }),
      { numRuns: 10_000 },
    )
  })
})
