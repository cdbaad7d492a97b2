// src/protocol/strict-json.ts: strict RFC 8259 parsing of control-channel payloads. The
// property tests are in strict-json-properties.test.ts.
import { describe, expect, it } from 'vitest'
import { MalformedJsonError, type MalformedJsonReason, parseStrictJson } from '../src/protocol/strict-json.js'
import { bytes, deepArrays, deepObjects, enc, expectSame, reasonOf } from './strict-json-helpers.js'

// [name, payload, expected reason, options?]
type Case = [string, Uint8Array, MalformedJsonReason, { maxDepth?: number; maxBytes?: number }?]

const malformed: Case[] = [
  // --- encoding
  ['invalid UTF-8 byte 0xff', bytes('{"a":"', [0xff], '"}'), 'INVALID_UTF8'],
  ['invalid UTF-8 byte 0xfe outside a string', bytes('{', [0xfe], '}'), 'INVALID_UTF8'],
  ['overlong "/" (C0 AF)', bytes('{"a":"', [0xc0, 0xaf], '"}'), 'INVALID_UTF8'],
  ['overlong 3-byte "/" (E0 80 AF)', bytes('{"a":"', [0xe0, 0x80, 0xaf], '"}'), 'INVALID_UTF8'],
  ['encoded surrogate U+D800 (ED A0 80)', bytes('{"a":"', [0xed, 0xa0, 0x80], '"}'), 'INVALID_UTF8'],
  ['encoded surrogate pair (CESU-8)', bytes('{"a":"', [0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x82], '"}'), 'INVALID_UTF8'],
  ['truncated multibyte sequence inside a string', bytes('{"a":"', [0xe2, 0x82], '"}'), 'INVALID_UTF8'],
  ['truncated multibyte sequence at the end', bytes('{"a":"x"}', [0xe2, 0x82]), 'INVALID_UTF8'],
  ['stray continuation byte', bytes('{"a":"', [0x80], '"}'), 'INVALID_UTF8'],
  ['code point above U+10FFFF (F4 90 80 80)', bytes('{"a":"', [0xf4, 0x90, 0x80, 0x80], '"}'), 'INVALID_UTF8'],
  ['UTF-8 BOM', bytes([0xef, 0xbb, 0xbf], '{"a":1}'), 'BOM'],
  ['BOM alone', bytes([0xef, 0xbb, 0xbf]), 'BOM'],
  ['U+FEFF after leading whitespace', bytes(' \uFEFF{"a":1}'), 'SYNTAX'],
  ['UTF-16LE text', bytes([0xff, 0xfe, 0x7b, 0x00, 0x7d, 0x00]), 'INVALID_UTF8'],
  // --- empty / not an object
  ['empty input', bytes(''), 'SYNTAX'],
  ['whitespace only', bytes(' \t\r\n '), 'SYNTAX'],
  ['top-level array', bytes('[]'), 'NOT_AN_OBJECT'],
  ['top-level non-empty array', bytes('[{"a":1}]'), 'NOT_AN_OBJECT'],
  ['top-level string', bytes('"str"'), 'NOT_AN_OBJECT'],
  ['top-level number', bytes('1'), 'NOT_AN_OBJECT'],
  ['top-level null', bytes('null'), 'NOT_AN_OBJECT'],
  ['top-level true', bytes('true'), 'NOT_AN_OBJECT'],
  ['top-level false with whitespace', bytes(' false\n'), 'NOT_AN_OBJECT'],
  // --- nesting
  ['33 nested objects (default maxDepth 32)', bytes(deepObjects(33)), 'TOO_DEEP'],
  ['array nesting 33 inside the top-level object', bytes('{"a":' + deepArrays(32) + '}'), 'TOO_DEEP'],
  ['10,000-deep arrays', bytes(deepArrays(10_000)), 'TOO_DEEP'],
  ['10,000-deep arrays inside an object', bytes('{"a":' + deepArrays(10_000) + '}'), 'TOO_DEEP'],
  ['10,000-deep objects', bytes(deepObjects(10_000)), 'TOO_DEEP'],
  ['1,000,000-deep arrays', bytes(deepArrays(1_000_000)), 'TOO_DEEP'],
  ['1,000,000-deep objects', bytes(deepObjects(1_000_000)), 'TOO_DEEP'],
  ['1,000,000 unclosed "["', bytes('['.repeat(1_000_000)), 'TOO_DEEP'],
  ['depth 4 with maxDepth 3', bytes('{"a":{"b":{"c":{}}}}'), 'TOO_DEEP', { maxDepth: 3 }],
  // --- member names
  ['duplicate key at top level', bytes('{"a":1,"a":2}'), 'DUPLICATE_KEY'],
  ['duplicate key with equal values', bytes('{"a":1,"b":0,"a":1}'), 'DUPLICATE_KEY'],
  ['duplicate key nested', bytes('{"x":{"b":1,"b":2}}'), 'DUPLICATE_KEY'],
  ['duplicate key inside an array element', bytes('{"x":[{},{"k":[],"k":{}}]}'), 'DUPLICATE_KEY'],
  ['duplicate keys differing only by escape', bytes('{"a":1,"\\u0061":2}'), 'DUPLICATE_KEY'],
  ['duplicate keys via surrogate-pair escape', bytes('{"\uD83D\uDE02":1,"\\ud83d\\ude02":2}'), 'DUPLICATE_KEY'],
  ['duplicate empty key', bytes('{"":1,"":2}'), 'DUPLICATE_KEY'],
  ['__proto__ key', bytes('{"__proto__":{"polluted":true}}'), 'FORBIDDEN_KEY'],
  ['__proto__ key nested in an array', bytes('{"a":[{"__proto__":1}]}'), 'FORBIDDEN_KEY'],
  ['__proto__ key written with escapes', bytes('{"\\u005f_proto__":{}}'), 'FORBIDDEN_KEY'],
  // --- surrogate escapes
  ['lone high surrogate escape', bytes('{"a":"\\ud800"}'), 'LONE_SURROGATE'],
  ['lone low surrogate escape', bytes('{"a":"\\udc00"}'), 'LONE_SURROGATE'],
  ['high surrogate + non-low escape', bytes('{"a":"\\ud800\\u0041"}'), 'LONE_SURROGATE'],
  ['high surrogate + escape just above the low range', bytes('{"a":"\\ud800\\ue000"}'), 'LONE_SURROGATE'],
  ['high surrogate + high surrogate', bytes('{"a":"\\ud83d\\ud83d"}'), 'LONE_SURROGATE'],
  ['high surrogate + literal char', bytes('{"a":"\\ud83dx"}'), 'LONE_SURROGATE'],
  ['high surrogate + other escape', bytes('{"a":"\\ud83d\\n"}'), 'LONE_SURROGATE'],
  ['reversed surrogate escapes', bytes('{"a":"\\ude02\\ud83d"}'), 'LONE_SURROGATE'],
  ['lone surrogate escape in a key', bytes('{"\\udfff":1}'), 'LONE_SURROGATE'],
  ['escaped high surrogate + raw astral char', bytes('{"a":"\\ud83d\uD83D\uDE02"}'), 'LONE_SURROGATE'],
  // --- numbers
  ['2^53 + 1', bytes('{"n":9007199254740993}'), 'NUMBER_OUT_OF_RANGE'],
  ['2^53', bytes('{"n":9007199254740992}'), 'NUMBER_OUT_OF_RANGE'],
  ['-(2^53 + 1)', bytes('{"n":-9007199254740993}'), 'NUMBER_OUT_OF_RANGE'],
  ['-(2^53)', bytes('{"n":[-9007199254740992]}'), 'NUMBER_OUT_OF_RANGE'],
  ['huge integer literal', bytes('{"n":123456789012345678901234567890}'), 'NUMBER_OUT_OF_RANGE'],
  ['1e400', bytes('{"n":1e400}'), 'NUMBER_OUT_OF_RANGE'],
  ['-1e400', bytes('{"n":-1e400}'), 'NUMBER_OUT_OF_RANGE'],
  ['1.8e308', bytes('{"n":1.8e308}'), 'NUMBER_OUT_OF_RANGE'],
  ['leading zero 01', bytes('{"n":01}'), 'SYNTAX'],
  ['leading zero -01', bytes('{"n":-01}'), 'SYNTAX'],
  ['leading zeros 00', bytes('{"n":00}'), 'SYNTAX'],
  ['leading plus', bytes('{"n":+1}'), 'SYNTAX'],
  ['leading decimal point', bytes('{"n":.5}'), 'SYNTAX'],
  ['trailing decimal point', bytes('{"n":1.}'), 'SYNTAX'],
  ['empty exponent', bytes('{"n":1e}'), 'SYNTAX'],
  ['signed empty exponent', bytes('{"n":1e+}'), 'SYNTAX'],
  ['minus alone', bytes('{"n":-}'), 'SYNTAX'],
  ['hex literal', bytes('{"n":0x10}'), 'SYNTAX'],
  ['NaN literal', bytes('{"n":NaN}'), 'SYNTAX'],
  ['Infinity literal', bytes('{"n":Infinity}'), 'SYNTAX'],
  ['-Infinity literal', bytes('{"n":-Infinity}'), 'SYNTAX'],
  // --- structure
  ['trailing comma in object', bytes('{"a":1,}'), 'SYNTAX'],
  ['trailing comma in array', bytes('{"a":[1,]}'), 'SYNTAX'],
  ['leading comma in array', bytes('{"a":[,1]}'), 'SYNTAX'],
  ['empty member', bytes('{,}'), 'SYNTAX'],
  ['missing comma', bytes('{"a":1 "b":2}'), 'SYNTAX'],
  ['missing colon', bytes('{"a" 1}'), 'SYNTAX'],
  ['missing value', bytes('{"a":}'), 'SYNTAX'],
  ['single-quoted strings', bytes("{'a':'b'}"), 'SYNTAX'],
  ['unquoted key', bytes('{a:1}'), 'SYNTAX'],
  ['number as key', bytes('{1:1}'), 'SYNTAX'],
  ['line comment', bytes('{"a":1 // c\n}'), 'SYNTAX'],
  ['block comment', bytes('{/* c */"a":1}'), 'SYNTAX'],
  ['capitalised literal True', bytes('{"a":True}'), 'SYNTAX'],
  ['truncated literal nul', bytes('{"a":nul}'), 'SYNTAX'],
  ['literal with extra letters', bytes('{"a":nulll}'), 'SYNTAX'],
  ['undefined literal', bytes('{"a":undefined}'), 'SYNTAX'],
  ['unterminated object', bytes('{"a":1'), 'SYNTAX'],
  ['unterminated array', bytes('{"a":[1'), 'SYNTAX'],
  ['mismatched brackets', bytes('{"a":[1}'), 'SYNTAX'],
  ['lone closing brace', bytes('}'), 'SYNTAX'],
  ['1,000,000 unclosed "[" with a huge maxDepth', bytes('{"a":' + '['.repeat(1_000_000)), 'SYNTAX', { maxDepth: 2_000_000 }],
  // --- strings
  ['unterminated string', bytes('{"a":"abc}'), 'SYNTAX'],
  ['unterminated key', bytes('{"a'), 'SYNTAX'],
  ['unescaped tab in string', bytes('{"a":"x\ty"}'), 'SYNTAX'],
  ['unescaped newline in string', bytes('{"a":"x\ny"}'), 'SYNTAX'],
  ['unescaped NUL in string', bytes('{"a":"', [0x00], '"}'), 'SYNTAX'],
  ['unescaped U+001F in key', bytes('{"\u001f":1}'), 'SYNTAX'],
  ['invalid escape \\x', bytes('{"a":"\\x41"}'), 'SYNTAX'],
  ["invalid escape \\'", bytes('{"a":"\\\'"}'), 'SYNTAX'],
  ['invalid escape \\U', bytes('{"a":"\\U0041"}'), 'SYNTAX'],
  ['short \\u escape', bytes('{"a":"\\u12"}'), 'SYNTAX'],
  ['non-hex \\u escape', bytes('{"a":"\\u12g4"}'), 'SYNTAX'],
  ['backslash at end of input', bytes('{"a":"\\'), 'SYNTAX'],
  // --- whitespace and trailing data
  ['vertical tab as whitespace', bytes('{\u000b"a":1}'), 'SYNTAX'],
  ['form feed as whitespace', bytes('{"a":1\u000c}'), 'SYNTAX'],
  ['NBSP as whitespace', bytes('{\u00a0"a":1}'), 'SYNTAX'],
  ['trailing garbage after object', bytes('{"a":1}x'), 'TRAILING_DATA'],
  ['two top-level objects', bytes('{"a":1}{"b":2}'), 'TRAILING_DATA'],
  ['trailing comma after object', bytes('{"a":1},'), 'TRAILING_DATA'],
  ['trailing NUL after object', bytes('{"a":1}', [0x00]), 'TRAILING_DATA'],
  ['two top-level numbers', bytes('1 2'), 'TRAILING_DATA'],
  // --- size
  ['payload over maxBytes', bytes('{"a":"' + 'x'.repeat(100) + '"}'), 'TOO_LARGE', { maxBytes: 64 }],
]

describe('parseStrictJson rejects malformed payloads with the exact reason', () => {
  it('covers at least 30 distinct malformed classes and every reason code', () => {
    expect(malformed.length).toBeGreaterThanOrEqual(30)
    expect(new Set(malformed.map((c) => c[0])).size).toBe(malformed.length)
    const reasons = new Set(malformed.map((c) => c[2]))
    expect([...reasons].sort()).toEqual(
      [
        'BOM',
        'DUPLICATE_KEY',
        'FORBIDDEN_KEY',
        'INVALID_UTF8',
        'LONE_SURROGATE',
        'NOT_AN_OBJECT',
        'NUMBER_OUT_OF_RANGE',
        'SYNTAX',
        'TOO_DEEP',
        'TOO_LARGE',
        'TRAILING_DATA',
      ].sort(),
    )
  })

  it.each(malformed)('%s', (_name, payload, reason, opts) => {
    expect(reasonOf(() => parseStrictJson(payload, opts))).toBe(reason)
  })

  it('the error is a MalformedJsonError (an Error) with a readonly reason and a position', () => {
    let err: unknown
    try {
      parseStrictJson(bytes('{"a":1,"a":2}'))
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(MalformedJsonError)
    expect(err).toBeInstanceOf(Error)
    const m = err as MalformedJsonError
    expect(m.name).toBe('MalformedJsonError')
    expect(m.reason).toBe('DUPLICATE_KEY')
    expect(m.position).toBe(7)
    expect(m.message).toMatch(/duplicate member name "a"/)
  })

  it('messages say what was wrong', () => {
    const message = (text: string): string => {
      try {
        parseStrictJson(bytes(text))
      } catch (e) {
        return (e as Error).message
      }
      return ''
    }
    expect(message('{"n":01}')).toMatch(/leading zero/)
    expect(message('{"a":"\\ud800"}')).toMatch(/high surrogate/)
    expect(message('{"a":1')).toMatch(/end of input/)
    expect(message('{"a":1}}')).toMatch(/after the top-level value/)
  })

  it('rejects bad arguments with TypeError/RangeError, not MalformedJsonError', () => {
    expect(() => parseStrictJson('{}' as unknown as Uint8Array)).toThrow(TypeError)
    expect(() => parseStrictJson(bytes('{}'), { maxDepth: 0 })).toThrow(RangeError)
    expect(() => parseStrictJson(bytes('{}'), { maxDepth: 1.5 })).toThrow(RangeError)
    expect(() => parseStrictJson(bytes('{}'), { maxBytes: -1 })).toThrow(RangeError)
  })
})

describe('parseStrictJson accepts valid JSON and matches JSON.parse', () => {
  const valid: Array<[string, string]> = [
    ['empty object', '{}'],
    ['empty object with whitespace', ' \t\r\n{ \t\r\n} \t\r\n'],
    ['PING example from the brief', '{"type":"PING","timestamp":123}'],
    ['nested objects and arrays', '{"a":{"b":{"c":[1,[2,[3,{}]],[]]}},"d":[{"e":null}]}'],
    ['all literal types', '{"t":true,"f":false,"n":null,"s":"","z":0,"arr":[true,false,null]}'],
    ['unicode text', '{"fr":"péché","he":"דּ","emoji":"😂","cjk":"赤ちゃん","sep":"\u2028\u2029","del":"\u007f"}'],
    ['unicode keys', '{"€":1,"😂":2,"":3}'],
    ['escapes', '{"s":"\\"\\\\\\/\\b\\f\\n\\r\\t\\u0000\\u001F\\u00e9\\u20AC\\uD83D\\uDE02\\uFFFF"}'],
    ['escaped key', '{"\\n\\u0041":"x"}'],
    ['max safe integer', '{"max":9007199254740991,"min":-9007199254740991}'],
    ['zero forms', '{"a":0,"b":-0,"c":0.0,"d":0e0,"e":-0.0E-0}'],
    ['floats', '{"a":1.5,"b":-0.25,"c":3.14159e10,"d":1E-7,"e":2.5e+3,"f":1e308,"g":5e-324}'],
    ['large floats with fraction/exponent are plain numbers', '{"a":9007199254740993.0,"b":1e21,"c":1e300}'],
    ['underflow to zero', '{"a":1e-400}'],
    ['number followed directly by structure', '{"a":[1,2.5,-3e2],"b":0}'],
    ['deep but allowed: 32 nested objects', deepObjects(32)],
    ['deep but allowed: arrays to depth 32', '{"a":' + deepArrays(31) + '}'],
    ['constructor / prototype / toString as data', '{"constructor":{"prototype":{"polluted":1}},"toString":1,"hasOwnProperty":"x","valueOf":[]}'],
    ['keys that look like array indices', '{"0":"a","10":"b","1":"c"}'],
    ['long string', '{"s":"' + 'abc\\n'.repeat(2000) + '"}'],
  ]
  it.each(valid)('%s', (_name, text) => {
    const got = parseStrictJson(enc.encode(text))
    expectSame(got, JSON.parse(text))
  })

  it('keeps -0 like JSON.parse and returns plain (Object.prototype) objects and real arrays', () => {
    const v = parseStrictJson(bytes('{"z":-0,"o":{},"a":[]}')) as Record<string, unknown>
    expect(Object.is(v['z'], -0)).toBe(true)
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype)
    expect(Object.getPrototypeOf(v['o'])).toBe(Object.prototype)
    expect(Array.isArray(v['a'])).toBe(true)
  })

  it('constructor/prototype keys do not affect prototypes', () => {
    const v = parseStrictJson(bytes('{"constructor":{"prototype":{"polluted":1}},"toString":"nope"}')) as Record<
      string,
      unknown
    >
    expect(Object.keys(v)).toEqual(['constructor', 'toString'])
    expect(v['toString']).toBe('nope')
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined()
    expect(({}).constructor).toBe(Object)
    expect(Object.prototype.toString.call({})).toBe('[object Object]')
  })

  it('honours a raised maxDepth and parses 1,000,000 levels without recursion', () => {
    const n = 1_000_000
    const v = parseStrictJson(bytes('{"a":' + deepArrays(n) + '}'), { maxDepth: n + 1 }) as { a: unknown }
    let depth = 0
    let cur: unknown = v.a
    while (Array.isArray(cur)) {
      depth++
      cur = cur[0]
    }
    expect(depth).toBe(n)
    expect(reasonOf(() => parseStrictJson(bytes('{"a":' + deepArrays(n) + '}'), { maxDepth: n }))).toBe('TOO_DEEP')
  })

  it('accepts a payload exactly at maxBytes', () => {
    const p = bytes('{"a":1}')
    expect(parseStrictJson(p, { maxBytes: p.length })).toEqual({ a: 1 })
    expect(reasonOf(() => parseStrictJson(p, { maxBytes: p.length - 1 }))).toBe('TOO_LARGE')
  })

  it('accepts a subarray view over a larger buffer', () => {
    const whole = bytes('xx{"a":"é"}yy')
    expect(parseStrictJson(whole.subarray(2, whole.length - 2))).toEqual({ a: 'é' })
  })

  it('parses a 1 KB message in well under 50 µs', () => {
    const msg = {
      type: 'WEBRTC_ICE',
      sessionId: 'session_0123456789abcdef',
      candidate: {
        candidate: 'candidate:842163049 1 udp 1677729535 192.0.2.10 53521 typ srflx raddr 10.0.0.5 rport 53521 generation 0 ufrag EsAw network-cost 999'.repeat(
          4,
        ),
        sdpMid: '0',
        sdpMLineIndex: 0,
        usernameFragment: 'EsAw',
      },
      extra: { list: [1, 2, 3, 4.5, -6, true, false, null], nested: { a: 'Ünïcödé ✓', b: '\n\t"quoted"' } },
      timestamp: 1_732_500_000_000,
    }
    // Pad to exactly 1,024 bytes of UTF-8.
    const base = enc.encode(JSON.stringify({ ...msg, pad: '' })).length
    const text = JSON.stringify({ ...msg, pad: 'p'.repeat(1024 - base) })
    const payload = enc.encode(text)
    expect(payload.length).toBe(1024)
    expectSame(parseStrictJson(payload), JSON.parse(text))
    for (let i = 0; i < 2_000; i++) parseStrictJson(payload) // warm up
    // Best of 5 batches, so a busy machine does not make this flaky.
    let best = Number.POSITIVE_INFINITY
    for (let batch = 0; batch < 5; batch++) {
      const iters = 2_000
      const t0 = performance.now()
      for (let i = 0; i < iters; i++) parseStrictJson(payload)
      best = Math.min(best, ((performance.now() - t0) * 1000) / iters)
    }
    console.log(`parseStrictJson: ${payload.length}-byte message in ${best.toFixed(2)} µs`)
    expect(best).toBeLessThan(50)
  })
})
