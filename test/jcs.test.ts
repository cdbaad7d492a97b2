// RFC 8785 conformance of src/protocol/canonical.ts:
//  (a) the cyberphone/json-canonicalization input/output vectors, byte-exact;
//  (b) ES6 number serialization against the reference repository's deterministic
//      number generator and its published SHA-256 checksums;
//  (c) values that must be refused.
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import canonicalize from 'canonicalize'
import { describe, expect, it } from 'vitest'
import { CanonicalizationError, canonicalBytes, canonicalString } from '../src/protocol/canonical.js'

/** The repository root: the nearest ancestor of this file holding package.json. */
function findRepoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) return dir
    const parent = path.dirname(dir)
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`)
    dir = parent
  }
}

const repoRoot = findRepoRoot()
const sharedDir = path.resolve(repoRoot, '../shared')
const jcsDir = path.join(sharedDir, 'vectors', 'jcs')

function requireVectors(): void {
  if (!existsSync(jcsDir) || !statSync(jcsDir).isDirectory()) {
    throw new Error(
      `RFC 8785 vectors not found: expected ${jcsDir} (the shared/ folder beside the repository root ${repoRoot}). ` +
        'Check out shared/ next to the repository; this test must not be skipped.',
    )
  }
}

function expectCanonError(fn: () => unknown, reason: CanonicalizationError['reason']): void {
  let caught: unknown
  try {
    fn()
  } catch (e) {
    caught = e
  }
  expect(caught, `expected CanonicalizationError(${reason})`).toBeInstanceOf(CanonicalizationError)
  expect((caught as CanonicalizationError).reason).toBe(reason)
}

describe('RFC 8785 vectors (cyberphone/json-canonicalization testdata)', () => {
  it('canonicalBytes(JSON.parse(input/X)) equals output/X byte for byte, 6/6', () => {
    requireVectors()
    const names = readdirSync(path.join(jcsDir, 'input'))
      .filter((n) => n.endsWith('.json'))
      .sort()
    expect(names).toEqual(['arrays.json', 'french.json', 'structures.json', 'unicode.json', 'values.json', 'weird.json'])
    let exact = 0
    const failures: string[] = []
    for (const name of names) {
      const input = readFileSync(path.join(jcsDir, 'input', name), 'utf8')
      const expected = new Uint8Array(readFileSync(path.join(jcsDir, 'output', name)))
      const got = canonicalBytes(JSON.parse(input))
      // outhex/X.txt holds the same bytes in hex: a cross-check of the output file itself.
      const hex = readFileSync(path.join(jcsDir, 'outhex', name.replace(/\.json$/, '.txt')), 'utf8')
      expect(Buffer.from(hex.replace(/\s+/g, ''), 'hex').equals(Buffer.from(expected)), `outhex/${name}`).toBe(true)
      if (Buffer.from(got).equals(Buffer.from(expected))) exact++
      else failures.push(`${name}: got ${Buffer.from(got).toString('utf8')} want ${Buffer.from(expected).toString('utf8')}`)
    }
    console.log(`JCS vectors: ${exact}/${names.length} byte-exact`)
    expect(failures).toEqual([])
    expect(exact).toBe(6)
  })
})

// ---------------------------------------------------------------------------
// ES6 number serialization: the generator of cyberphone/json-canonicalization
// testdata/README.md ("ES6 Numbers"): 168 fixed values, then 2,000 values counting
// up from the smallest normal double (0x0010000000000000), then doubles read
// little-endian, 4 per block, from the chain block = SHA-256(block) that starts with
// 32 zero bytes, skipping ±0, NaN and ±Infinity. Each line is
// `<bits as lowercase hex WITHOUT leading zeros>,<ES6 serialization>\n`
// (the reference prints `u64.toString(16)`, so 0 is "0", not 16 zeros).

const STATIC_BITS: readonly bigint[] = [
  0x0000000000000000n, 0x8000000000000000n, 0x0000000000000001n, 0x8000000000000001n,
  0xc46696695dbd1cc3n, 0xc43211ede4974a35n, 0xc3fce97ca0f21056n, 0xc3c7213080c1a6acn,
  0xc39280f39a348556n, 0xc35d9b1f5d20d557n, 0xc327af4c4a80aaacn, 0xc2f2f2a36ecd5556n,
  0xc2be51057e155558n, 0xc28840d131aaaaacn, 0xc253670dc1555557n, 0xc21f0b4935555557n,
  0xc1e8d5d42aaaaaacn, 0xc1b3de4355555556n, 0xc17fca0555555556n, 0xc1496e6aaaaaaaabn,
  0xc114585555555555n, 0xc0e046aaaaaaaaabn, 0xc0aa0aaaaaaaaaaan, 0xc074d55555555555n,
  0xc040aaaaaaaaaaabn, 0xc00aaaaaaaaaaaabn, 0xbfd5555555555555n, 0xbfa1111111111111n,
  0xbf6b4e81b4e81b4fn, 0xbf35d867c3ece2a5n, 0xbf0179ec9cbd821en, 0xbecbf647612f3696n,
  0xbe965e9f80f29212n, 0xbe61e54c672874dbn, 0xbe2ca213d840baf8n, 0xbdf6e80fe033c8c6n,
  0xbdc2533fe68fd3d2n, 0xbd8d51ffd74c861cn, 0xbd5774ccac3d3817n, 0xbd22c3d6f030f9acn,
  0xbcee0624b3818f79n, 0xbcb804ea293472c7n, 0xbc833721ba905bd3n, 0xbc4ebe9c5db3c61en,
  0xbc18987d17c304e5n, 0xbbe3ad30dfcf371dn, 0xbbaf7b816618582fn, 0xbb792f9ab81379bfn,
  0xbb442615600f9499n, 0xbb101e77800c76e1n, 0xbad9ca58cce0be35n, 0xbaa4a1e0a3e6fe90n,
  0xba708180831f320dn, 0xba3a68cd9e985016n, 0x446696695dbd1cc3n, 0x443211ede4974a35n,
  0x43fce97ca0f21056n, 0x43c7213080c1a6acn, 0x439280f39a348556n, 0x435d9b1f5d20d557n,
  0x4327af4c4a80aaacn, 0x42f2f2a36ecd5556n, 0x42be51057e155558n, 0x428840d131aaaaacn,
  0x4253670dc1555557n, 0x421f0b4935555557n, 0x41e8d5d42aaaaaacn, 0x41b3de4355555556n,
  0x417fca0555555556n, 0x41496e6aaaaaaaabn, 0x4114585555555555n, 0x40e046aaaaaaaaabn,
  0x40aa0aaaaaaaaaaan, 0x4074d55555555555n, 0x4040aaaaaaaaaaabn, 0x400aaaaaaaaaaaabn,
  0x3fd5555555555555n, 0x3fa1111111111111n, 0x3f6b4e81b4e81b4fn, 0x3f35d867c3ece2a5n,
  0x3f0179ec9cbd821en, 0x3ecbf647612f3696n, 0x3e965e9f80f29212n, 0x3e61e54c672874dbn,
  0x3e2ca213d840baf8n, 0x3df6e80fe033c8c6n, 0x3dc2533fe68fd3d2n, 0x3d8d51ffd74c861cn,
  0x3d5774ccac3d3817n, 0x3d22c3d6f030f9acn, 0x3cee0624b3818f79n, 0x3cb804ea293472c7n,
  0x3c833721ba905bd3n, 0x3c4ebe9c5db3c61en, 0x3c18987d17c304e5n, 0x3be3ad30dfcf371dn,
  0x3baf7b816618582fn, 0x3b792f9ab81379bfn, 0x3b442615600f9499n, 0x3b101e77800c76e1n,
  0x3ad9ca58cce0be35n, 0x3aa4a1e0a3e6fe90n, 0x3a708180831f320dn, 0x3a3a68cd9e985016n,
  0x4024000000000000n, 0x4014000000000000n, 0x3fe0000000000000n, 0x3fa999999999999an,
  0x3f747ae147ae147bn, 0x3f40624dd2f1a9fcn, 0x3f0a36e2eb1c432dn, 0x3ed4f8b588e368f1n,
  0x3ea0c6f7a0b5ed8dn, 0x3e6ad7f29abcaf48n, 0x3e35798ee2308c3an, 0x3ed539223589fa95n,
  0x3ed4ff26cd5a7781n, 0x3ed4f95a762283ffn, 0x3ed4f8c60703520cn, 0x3ed4f8b72f19cd0dn,
  0x3ed4f8b5b31c0c8dn, 0x3ed4f8b58d1c461an, 0x3ed4f8b5894f7f0en, 0x3ed4f8b588ee37f3n,
  0x3ed4f8b588e47da4n, 0x3ed4f8b588e3849cn, 0x3ed4f8b588e36bb5n, 0x3ed4f8b588e36937n,
  0x3ed4f8b588e368f8n, 0x3ed4f8b588e368f1n, 0x3ff0000000000000n, 0xbff0000000000000n,
  0xbfeffffffffffffan, 0xbfeffffffffffffbn, 0x3feffffffffffffan, 0x3feffffffffffffbn,
  0x3feffffffffffffcn, 0x3feffffffffffffen, 0xbfefffffffffffffn, 0xbfefffffffffffffn,
  0x3fefffffffffffffn, 0x3fefffffffffffffn, 0x3fd3333333333332n, 0x3fd3333333333333n,
  0x3fd3333333333334n, 0x0010000000000000n, 0x000ffffffffffffdn, 0x000fffffffffffffn,
  0x7fefffffffffffffn, 0xffefffffffffffffn, 0x4340000000000000n, 0xc340000000000000n,
  0x4430000000000000n, 0x44b52d02c7e14af5n, 0x44b52d02c7e14af6n, 0x44b52d02c7e14af7n,
  0x444b1ae4d6e2ef4en, 0x444b1ae4d6e2ef4fn, 0x444b1ae4d6e2ef50n, 0x3eb0c6f7a0b5ed8cn,
  0x3eb0c6f7a0b5ed8dn, 0x41b3de4355555553n, 0x41b3de4355555554n, 0x41b3de4355555555n,
  0x41b3de4355555556n, 0x41b3de4355555557n, 0xbecbf647612f3696n, 0x43143ff3c1cb0959n,
]
const SERIAL_COUNT = 2000
const SMALLEST_NORMAL_BITS = 0x0010000000000000n

/** Yields the reference sequence of doubles, without end. */
function* es6TestDoubles(): Generator<number, never, void> {
  const scratch = new DataView(new ArrayBuffer(8))
  const fromBits = (bits: bigint): number => {
    scratch.setBigUint64(0, bits)
    return scratch.getFloat64(0)
  }
  for (const bits of STATIC_BITS) yield fromBits(bits)
  for (let i = 0; i < SERIAL_COUNT; i++) yield fromBits(SMALLEST_NORMAL_BITS + BigInt(i))
  let block: Buffer = Buffer.alloc(32)
  for (;;) {
    block = createHash('sha256').update(block).digest()
    for (let i = 0; i < 4; i++) {
      const f = block.readDoubleLE(i * 8)
      if (f === 0 || !Number.isFinite(f)) continue // the reference skips ±0, NaN, ±Infinity
      yield f
    }
  }
}

/** IEEE-754 bits of `f` as lowercase hex without leading zeros (BigInt#toString(16)). */
const bitsView = new DataView(new ArrayBuffer(8))
function hexBits(f: number, pad: boolean): string {
  bitsView.setFloat64(0, f)
  const hi = bitsView.getUint32(0)
  const lo = bitsView.getUint32(4)
  const s = hi === 0 ? lo.toString(16) : hi.toString(16) + lo.toString(16).padStart(8, '0')
  return pad ? s.padStart(16, '0') : s
}

/** Serialization of a lone number by the library canonicalBytes delegates to. */
function es6(f: number): string {
  const s = canonicalize(f)
  if (s === undefined) throw new Error(`canonicalize(${f}) returned undefined`)
  return s
}

interface Checkpoint {
  lines: number
  sha256: string
  bytes: number
}
function es6Checksums(checkpoints: readonly number[], pad: boolean): Checkpoint[] {
  const hash = createHash('sha256')
  const out: Checkpoint[] = []
  const last = Math.max(...checkpoints)
  let chunk = ''
  let bytes = 0
  let lines = 0
  for (const f of es6TestDoubles()) {
    const line = `${hexBits(f, pad)},${es6(f)}\n` // ASCII only, so length = bytes
    chunk += line
    bytes += line.length
    lines++
    if (chunk.length >= 1 << 16 || checkpoints.includes(lines)) {
      hash.update(chunk, 'latin1')
      chunk = ''
    }
    if (checkpoints.includes(lines)) out.push({ lines, sha256: hash.copy().digest('hex'), bytes })
    if (lines === last) return out
  }
  throw new Error('unreachable')
}

describe('ES6 number serialization (cyberphone/json-canonicalization testdata/README.md generator)', () => {
  it('the generator reproduces the README sample lines and the documented sequence layout', () => {
    const seq = es6TestDoubles()
    const first: number[] = []
    for (let i = 0; i < STATIC_BITS.length + SERIAL_COUNT + 8; i++) first.push(seq.next().value)
    expect(STATIC_BITS.length).toBe(168)
    expect(hexBits(first[0]!, false) + ',' + es6(first[0]!)).toBe('0,0')
    expect(hexBits(first[1]!, false) + ',' + es6(first[1]!)).toBe('8000000000000000,0') // -0
    expect(hexBits(first[168]!, false)).toBe('10000000000000') // smallest normal double
    expect(hexBits(first[168 + 1999]!, false)).toBe('100000000007cf')
    // Sample lines quoted in the README.
    const sample = (bits: bigint): string => {
      const v = new DataView(new ArrayBuffer(8))
      v.setBigUint64(0, bits)
      const f = v.getFloat64(0)
      return `${hexBits(f, false)},${es6(f)}`
    }
    expect(sample(0x4340000000000001n)).toBe('4340000000000001,9007199254740994')
    expect(sample(0x4340000000000002n)).toBe('4340000000000002,9007199254740996')
    expect(sample(0x444b1ae4d6e2ef50n)).toBe('444b1ae4d6e2ef50,1e+21')
    expect(sample(0x3eb0c6f7a0b5ed8dn)).toBe('3eb0c6f7a0b5ed8d,0.000001')
    expect(sample(0x3eb0c6f7a0b5ed8cn)).toBe('3eb0c6f7a0b5ed8c,9.999999999999997e-7')
    // The random part never yields ±0 or non-finite values.
    for (const f of first.slice(168 + 2000)) expect(f !== 0 && Number.isFinite(f)).toBe(true)
  })

  it('SHA-256 of the first 1,000 and 1,000,000 lines match the published checksums', () => {
    const started = performance.now()
    const [k1, m1] = es6Checksums([1_000, 1_000_000], false)
    const ms = performance.now() - started
    console.log(`ES6 numbers: ${k1!.lines} lines (${k1!.bytes} bytes) sha256=${k1!.sha256}`)
    console.log(`ES6 numbers: ${m1!.lines} lines (${m1!.bytes} bytes) sha256=${m1!.sha256} [${ms.toFixed(0)} ms]`)
    // Sizes from the README's table: a cross-check that the line format is right.
    expect(k1).toEqual({ lines: 1_000, bytes: 37_967, sha256: 'be18b62b6f69cdab33a7e0dae0d9cfa869fda80ddc712221570f9f40a5878687' })
    expect(m1).toEqual({
      lines: 1_000_000,
      bytes: 40_357_417,
      sha256: '49415fee2c56c77864931bd3624faad425c3c577d6d74e89a83bc725506dad16',
    })
  })

  it('zero-padding the hex to 16 digits does NOT reproduce the published checksum', () => {
    // Documents the line format: the reference prints the bits without leading zeros.
    const [k1] = es6Checksums([1_000], true)
    expect(k1!.sha256).not.toBe('be18b62b6f69cdab33a7e0dae0d9cfa869fda80ddc712221570f9f40a5878687')
  })

  it('canonicalBytes writes numbers inside a document exactly as the ES6 serializer does', () => {
    const seq = es6TestDoubles()
    for (let i = 0; i < 5_000; i++) {
      const f = seq.next().value
      // canonicalBytes refuses integral doubles in [2^53, 1e21) (see canonical.ts).
      if (Number.isInteger(f) && !Number.isSafeInteger(f) && Math.abs(f) < 1e21) {
        expect(() => canonicalString({ n: f })).toThrow(CanonicalizationError)
        continue
      }
      expect(canonicalString({ n: f })).toBe(`{"n":${es6(f)}}`)
    }
  })
})

describe('canonicalBytes refuses non-JSON and unsafe values', () => {
  const cyclic: Record<string, unknown> = { a: 1 }
  cyclic['self'] = cyclic
  const cyclicArr: unknown[] = [1]
  cyclicArr.push({ back: cyclicArr })
  const deep = (n: number): unknown => {
    let v: unknown = 0
    for (let i = 0; i < n; i++) v = [v]
    return v
  }

  const cases: Array<[string, unknown, CanonicalizationError['reason']]> = [
    ['lone high surrogate in a value', { s: 'a\uD800b' }, 'LONE_SURROGATE'],
    ['lone high surrogate at the end', { s: 'ab\uDBFF' }, 'LONE_SURROGATE'],
    ['lone low surrogate in a value', { s: '\uDC00' }, 'LONE_SURROGATE'],
    ['reversed surrogate pair', { s: '\uDE02\uD83D' }, 'LONE_SURROGATE'],
    ['lone surrogate in a member name', { ['k\uD800']: 1 }, 'LONE_SURROGATE'],
    ['lone surrogate in a nested array', { a: [[['\uDFFF']]] }, 'LONE_SURROGATE'],
    ['lone surrogate as the top-level value', '\uD800', 'LONE_SURROGATE'],
    ['NaN', { n: Number.NaN }, 'NON_FINITE_NUMBER'],
    ['Infinity', { n: Number.POSITIVE_INFINITY }, 'NON_FINITE_NUMBER'],
    ['-Infinity', { n: [Number.NEGATIVE_INFINITY] }, 'NON_FINITE_NUMBER'],
    ['2^53', { n: 2 ** 53 }, 'UNSAFE_INTEGER'],
    ['-(2^53)', { n: -(2 ** 53) }, 'UNSAFE_INTEGER'],
    ['2^53 + 2', { n: 2 ** 53 + 2 }, 'UNSAFE_INTEGER'],
    ['1e20 (integral, printed without exponent)', { n: 1e20 }, 'UNSAFE_INTEGER'],
    ['cycle through an object', cyclic, 'CYCLE'],
    ['cycle through an array', cyclicArr, 'CYCLE'],
    ['undefined member', { u: undefined }, 'UNSUPPORTED_TYPE'],
    ['undefined element', [undefined], 'UNSUPPORTED_TYPE'],
    ['undefined at the top level', undefined, 'UNSUPPORTED_TYPE'],
    ['sparse array', [1, , 3], 'UNSUPPORTED_TYPE'], // eslint-disable-line no-sparse-arrays
    ['function', { f: () => 1 }, 'UNSUPPORTED_TYPE'],
    ['symbol value', { s: Symbol('x') }, 'UNSUPPORTED_TYPE'],
    ['symbol key', { [Symbol('x')]: 1 }, 'UNSUPPORTED_TYPE'],
    ['bigint', { b: 1n }, 'UNSUPPORTED_TYPE'],
    ['Date', { d: new Date(0) }, 'UNSUPPORTED_TYPE'],
    ['Map', { m: new Map() }, 'UNSUPPORTED_TYPE'],
    ['boxed string', { s: new String('x') }, 'UNSUPPORTED_TYPE'],
    ['typed array', { t: new Uint8Array(2) }, 'UNSUPPORTED_TYPE'],
    ['__proto__ member', JSON.parse('{"__proto__":1}'), 'FORBIDDEN_KEY'],
    ['nesting of 65', deep(65), 'TOO_DEEP'],
    ['nesting of 100,000', deep(100_000), 'TOO_DEEP'],
  ]
  it.each(cases)('%s', (_name, value, reason) => {
    expectCanonError(() => canonicalBytes(value), reason)
    expectCanonError(() => canonicalString(value), reason)
  })

  it('accepts the limits themselves', () => {
    expect(canonicalString({ a: Number.MAX_SAFE_INTEGER, b: Number.MIN_SAFE_INTEGER })).toBe(
      '{"a":9007199254740991,"b":-9007199254740991}',
    )
    expect(canonicalString(deep(64))).toBe('['.repeat(64) + '0' + ']'.repeat(64))
    expect(canonicalString({ n: 1e21, m: -1e30 })).toBe('{"m":-1e+30,"n":1e+21}')
    expect(canonicalString({ z: -0 })).toBe('{"z":0}')
    expect(canonicalString({ s: '\uD83D\uDE02' })).toBe('{"s":"\uD83D\uDE02"}')
  })

  it('names the offending location', () => {
    expect(() => canonicalString({ a: [1, , 3] })).toThrow(/sparse array hole at \/a\/1/) // eslint-disable-line no-sparse-arrays
    expect(() => canonicalString({ 'x/y': { n: Number.NaN } })).toThrow(/at \/x~1y\/n/)
  })

  it('shared (acyclic) references are not cycles', () => {
    const shared = { x: 1 }
    expect(canonicalString({ a: shared, b: [shared, shared] })).toBe('{"a":{"x":1},"b":[{"x":1},{"x":1}]}')
  })

  it('null-prototype objects, constructor/prototype/toJSON keys are plain data', () => {
    const o = Object.create(null) as Record<string, unknown>
    o['b'] = 1
    o['a'] = { constructor: 'c', prototype: 'p', toJSON: 't' }
    expect(canonicalString(o)).toBe('{"a":{"constructor":"c","prototype":"p","toJSON":"t"},"b":1}')
  })

  it('reads each getter once and serializes the snapshot', () => {
    let calls = 0
    const o = {
      get v(): number {
        calls++
        return calls
      },
    }
    expect(canonicalString(o)).toBe('{"v":1}')
    expect(calls).toBe(1)
  })

  it('canonicalBytes is the UTF-8 of canonicalString', () => {
    const v = { '€': 'ö', '😂': ['\u0000', '\u001f', '"\\'] }
    expect(Buffer.from(canonicalBytes(v)).toString('utf8')).toBe(canonicalString(v))
    expect(canonicalString(v)).toBe('{"€":"ö","😂":["\\u0000","\\u001f","\\"\\\\"]}')
  })
})
