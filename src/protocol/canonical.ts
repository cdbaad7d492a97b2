// RFC 8785 (JSON Canonicalization Scheme) output for every frame this library sends.
//
// The serialization itself is the `canonicalize` package (ES6 number formatting,
// UTF-16 code-unit key order, JSON.stringify string escaping). Before handing a value
// to it we validate the whole tree ourselves and take a plain-data snapshot, so that
// nothing the package would silently drop, coerce or call (undefined members,
// functions, symbols, toJSON, getters, class instances) can reach the wire, and so
// that everything we emit is accepted by parseStrictJson.
import canonicalize from 'canonicalize'

export type CanonicalizationReason =
  | 'NON_FINITE_NUMBER'
  | 'UNSAFE_INTEGER'
  | 'LONE_SURROGATE'
  | 'UNSUPPORTED_TYPE'
  | 'CYCLE'
  | 'TOO_DEEP'
  | 'FORBIDDEN_KEY'

export class CanonicalizationError extends Error {
  /** Stable machine-readable code. */
  readonly reason: CanonicalizationReason
  /** JSON-pointer-like location of the offending value, e.g. `/a/0`. */
  readonly path: string

  constructor(reason: CanonicalizationReason, message: string, path: string) {
    super(`${message} at ${path === '' ? '(root)' : path}`)
    this.name = 'CanonicalizationError'
    this.reason = reason
    this.path = path
  }
}

/** Maximum container nesting (a top-level object or array is depth 1). */
export const CANONICAL_MAX_DEPTH = 64

/**
 * Doubles from 1e21 upwards are written by ES6 Number::toString in exponent form
 * (`1e+21`); below that an integral double is written as a bare integer literal.
 */
const EXPONENT_FORM_THRESHOLD = 1e21

const encoder = new TextEncoder()

/** True if `s` contains an unpaired UTF-16 surrogate. */
export function hasLoneSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0xd800 || c > 0xdfff) continue
    if (c >= 0xdc00) return true // low surrogate without a preceding high one
    const next = s.charCodeAt(i + 1) // NaN past the end
    if (!(next >= 0xdc00 && next <= 0xdfff)) return true
    i++
  }
  return false
}

function pointerToken(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1')
}

function checkString(s: string, path: string, what: string): void {
  if (hasLoneSurrogate(s)) throw new CanonicalizationError('LONE_SURROGATE', `${what} contains a lone surrogate`, path)
}

function checkNumber(n: number, path: string): void {
  if (!Number.isFinite(n)) throw new CanonicalizationError('NON_FINITE_NUMBER', `${n} is not a finite number`, path)
  // An integral double beyond ±(2^53−1) that would be serialized as a bare integer
  // literal is rejected: the digits would not be exact and parseStrictJson (and any
  // peer enforcing the I-JSON safe range) rejects them. Integral doubles of magnitude
  // ≥ 1e21 are serialized in exponent form (`1e+30`), i.e. as floats, and pass, as
  // RFC 8785's own test data requires.
  if (Number.isInteger(n) && !Number.isSafeInteger(n) && Math.abs(n) < EXPONENT_FORM_THRESHOLD) {
    throw new CanonicalizationError('UNSAFE_INTEGER', `integer ${n} is outside ±(2^53−1)`, path)
  }
}

/**
 * Validates `value` and returns a snapshot made only of null-prototype objects,
 * arrays and primitives. `ancestors` holds the containers on the current path.
 */
function snapshot(value: unknown, path: string, depth: number, ancestors: Set<object>): unknown {
  switch (typeof value) {
    case 'string':
      checkString(value, path, 'string')
      return value
    case 'number':
      checkNumber(value, path)
      return value
    case 'boolean':
      return value
    case 'object':
      break
    default:
      // undefined, function, symbol, bigint
      throw new CanonicalizationError('UNSUPPORTED_TYPE', `a value of type ${typeof value} is not JSON`, path)
  }
  if (value === null) return null

  if (ancestors.has(value)) throw new CanonicalizationError('CYCLE', 'cyclic reference', path)
  if (depth + 1 > CANONICAL_MAX_DEPTH) {
    throw new CanonicalizationError('TOO_DEEP', `nesting deeper than ${CANONICAL_MAX_DEPTH}`, path)
  }
  if (Object.getOwnPropertySymbols(value).length > 0) {
    throw new CanonicalizationError('UNSUPPORTED_TYPE', 'symbol-keyed properties are not JSON', path)
  }

  ancestors.add(value)
  let result: unknown
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) {
      throw new CanonicalizationError('UNSUPPORTED_TYPE', 'array subclasses are not supported', path)
    }
    const n = value.length
    const out: unknown[] = new Array<unknown>(n)
    for (let i = 0; i < n; i++) {
      const p = `${path}/${i}`
      if (!Object.hasOwn(value, i)) throw new CanonicalizationError('UNSUPPORTED_TYPE', 'sparse array hole', p)
      out[i] = snapshot(value[i], p, depth + 1, ancestors)
    }
    result = out
  } else {
    const proto: unknown = Object.getPrototypeOf(value)
    if (proto !== Object.prototype && proto !== null) {
      const name = (value as { constructor?: { name?: unknown } }).constructor?.name
      throw new CanonicalizationError(
        'UNSUPPORTED_TYPE',
        `only plain objects are supported, not ${typeof name === 'string' && name !== '' ? name : 'this object'}`,
        path,
      )
    }
    const out = Object.create(null) as Record<string, unknown>
    const src = value as Record<string, unknown>
    for (const key of Object.keys(src)) {
      const p = `${path}/${pointerToken(key)}`
      checkString(key, p, 'member name')
      if (key === '__proto__') throw new CanonicalizationError('FORBIDDEN_KEY', 'member name "__proto__" is not allowed', p)
      out[key] = snapshot(src[key], p, depth + 1, ancestors)
    }
    result = out
  }
  ancestors.delete(value)
  return result
}

/** RFC 8785 canonical JSON text of `value`, after strict validation. */
export function canonicalString(value: unknown): string {
  const data = snapshot(value, '', 0, new Set())
  const text = canonicalize(data)
  // Unreachable after validation (only undefined/functions/symbols map to undefined).
  if (text === undefined) throw new CanonicalizationError('UNSUPPORTED_TYPE', 'value has no JSON form', '')
  return text
}

/** UTF-8 bytes of the RFC 8785 canonical JSON text of `value`. */
export function canonicalBytes(value: unknown): Uint8Array {
  return encoder.encode(canonicalString(value))
}
