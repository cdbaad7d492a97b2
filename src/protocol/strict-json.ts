// Strict RFC 8259 JSON parser for control-channel frames.
//
// JSON.parse is too lenient for a wire protocol: it keeps the last of duplicate
// member names, accepts lone surrogates in \u escapes and silently rounds integers
// beyond 2^53. This parser rejects all of those, together with invalid UTF-8, a byte
// order mark, any syntax error, excessive nesting and the `__proto__` key, and it
// never recurses (an explicit stack), so hostile nesting cannot overflow the JS stack.

import { MalformedJsonError, type MalformedJsonReason } from './strict-json-error.js'

export { MalformedJsonError, type MalformedJsonReason } from './strict-json-error.js'

export interface StrictJsonOptions {
  /** Maximum nesting of objects/arrays; the top-level object is depth 1. Default 32. */
  maxDepth?: number
  /**
   * Maximum payload size in bytes, checked before decoding. Default: no limit here
   * (the framing layer already bounds a frame's length).
   */
  maxBytes?: number
}

export const DEFAULT_MAX_DEPTH = 32

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

// Character codes.
const QUOTE = 0x22
const BACKSLASH = 0x5c
const SLASH = 0x2f
const COMMA = 0x2c
const COLON = 0x3a
const LBRACE = 0x7b
const RBRACE = 0x7d
const LBRACKET = 0x5b
const RBRACKET = 0x5d
const MINUS = 0x2d
const PLUS = 0x2b
const DOT = 0x2e
const ZERO = 0x30
const NINE = 0x39
const LOWER_E = 0x65
const UPPER_E = 0x45

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x61 && c <= 0x66) return c - 0x57
  if (c >= 0x41 && c <= 0x46) return c - 0x37
  return -1
}

/** An open container on the explicit parse stack. */
type Frame =
  | { readonly array: false; readonly obj: Record<string, unknown>; key: string }
  | { readonly array: true; readonly arr: unknown[] }

/** Returned by the value parser's steps when a container was opened or continues. */
const PENDING: unique symbol = Symbol('pending')

class Parser {
  private pos = 0

  constructor(
    private readonly text: string,
    private readonly maxDepth: number,
  ) {}

  private fail(reason: MalformedJsonReason, message: string, at: number = this.pos): never {
    throw new MalformedJsonError(reason, message, at)
  }

  private skipWs(): void {
    const text = this.text
    let p = this.pos
    for (;;) {
      const c = text.charCodeAt(p)
      // Only the four RFC 8259 whitespace characters.
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) p++
      else break
    }
    this.pos = p
  }

  private describe(at: number): string {
    if (at >= this.text.length) return 'unexpected end of input'
    const cp = this.text.codePointAt(at) ?? 0
    return `unexpected character U+${cp.toString(16).toUpperCase().padStart(4, '0')}`
  }

  /** Parses the whole text: one value, optional whitespace, end. */
  parseDocument(): unknown {
    this.skipWs()
    if (this.pos >= this.text.length) this.fail('SYNTAX', 'empty document')
    const value = this.parseValue()
    this.skipWs()
    if (this.pos < this.text.length) this.fail('TRAILING_DATA', 'data after the top-level value')
    return value
  }

  /** Iterative value parser: containers live on `stack`, never on the call stack. */
  private parseValue(): unknown {
    const stack: Frame[] = []
    for (;;) {
      const value = this.parseValueStart(stack)
      if (value === PENDING) continue
      const done = this.completeValue(stack, value)
      if (done !== PENDING) return done
    }
  }

  /**
   * Parses the start of one value: a scalar or an empty container is returned whole;
   * a non-empty container is pushed on `stack` (its first member name read) and
   * PENDING returned, its first element or member value coming next.
   */
  private parseValueStart(stack: Frame[]): unknown {
    const text = this.text
    this.skipWs()
    const c = text.charCodeAt(this.pos)
    switch (c) {
      case LBRACE: {
        if (stack.length + 1 > this.maxDepth) this.fail('TOO_DEEP', `nesting deeper than ${this.maxDepth}`)
        this.pos++
        this.skipWs()
        const obj: Record<string, unknown> = {}
        if (text.charCodeAt(this.pos) === RBRACE) {
          this.pos++
          return obj
        }
        const key = this.parseKey(obj)
        stack.push({ array: false, obj, key })
        return PENDING
      }
      case LBRACKET: {
        if (stack.length + 1 > this.maxDepth) this.fail('TOO_DEEP', `nesting deeper than ${this.maxDepth}`)
        this.pos++
        this.skipWs()
        const arr: unknown[] = []
        if (text.charCodeAt(this.pos) === RBRACKET) {
          this.pos++
          return arr
        }
        stack.push({ array: true, arr })
        return PENDING
      }
      case QUOTE:
        return this.parseString()
      case 0x74: // t
        this.expectLiteral('true')
        return true
      case 0x66: // f
        this.expectLiteral('false')
        return false
      case 0x6e: // n
        this.expectLiteral('null')
        return null
      default:
        if (c === MINUS || (c >= ZERO && c <= NINE)) return this.parseNumber()
        return this.fail('SYNTAX', `${this.describe(this.pos)}; expected a value`)
    }
  }

  /**
   * A complete value: attaches it to its parent, closing finished containers. Returns
   * the top-level value once the stack is empty, or PENDING when the next element or
   * member value is to be parsed.
   */
  private completeValue(stack: Frame[], value: unknown): unknown {
    const text = this.text
    for (;;) {
      const top = stack[stack.length - 1]
      if (top === undefined) return value
      if (top.array) {
        top.arr.push(value)
        this.skipWs()
        const d = text.charCodeAt(this.pos)
        if (d === COMMA) {
          this.pos++
          return PENDING // parse the next element
        }
        if (d !== RBRACKET) this.fail('SYNTAX', `${this.describe(this.pos)}; expected ',' or ']'`)
        this.pos++
        value = top.arr
        stack.pop()
      } else {
        Object.defineProperty(top.obj, top.key, { value, writable: true, enumerable: true, configurable: true })
        this.skipWs()
        const d = text.charCodeAt(this.pos)
        if (d === COMMA) {
          this.pos++
          this.skipWs()
          top.key = this.parseKey(top.obj)
          return PENDING // parse the member's value
        }
        if (d !== RBRACE) this.fail('SYNTAX', `${this.describe(this.pos)}; expected ',' or '}'`)
        this.pos++
        value = top.obj
        stack.pop()
      }
    }
  }

  /** At a member name: parses `"name" :` and checks it against the object so far. */
  private parseKey(obj: Record<string, unknown>): string {
    const start = this.pos
    if (this.text.charCodeAt(start) !== QUOTE) this.fail('SYNTAX', `${this.describe(start)}; expected a member name`)
    const key = this.parseString()
    if (key === '__proto__') this.fail('FORBIDDEN_KEY', 'member name "__proto__" is not allowed', start)
    if (Object.hasOwn(obj, key)) this.fail('DUPLICATE_KEY', `duplicate member name ${JSON.stringify(key)}`, start)
    this.skipWs()
    if (this.text.charCodeAt(this.pos) !== COLON) this.fail('SYNTAX', `${this.describe(this.pos)}; expected ':'`)
    this.pos++
    return key
  }

  private expectLiteral(word: string): void {
    if (!this.text.startsWith(word, this.pos)) this.fail('SYNTAX', `${this.describe(this.pos)}; expected a value`)
    this.pos += word.length
  }

  /** At an opening quote. Returns the decoded string; leaves pos after the closing quote. */
  private parseString(): string {
    const text = this.text
    const len = text.length
    let p = this.pos + 1
    let out = ''
    let chunkStart = p
    for (;;) {
      if (p >= len) this.fail('SYNTAX', 'unterminated string', this.pos)
      const c = text.charCodeAt(p)
      if (c === QUOTE) {
        out += text.slice(chunkStart, p)
        this.pos = p + 1
        return out
      }
      if (c < 0x20) this.fail('SYNTAX', 'unescaped control character in string', p)
      if (c !== BACKSLASH) {
        p++
        continue
      }
      out += text.slice(chunkStart, p)
      const e = text.charCodeAt(p + 1)
      switch (e) {
        case QUOTE:
          out += '"'
          p += 2
          break
        case BACKSLASH:
          out += '\\'
          p += 2
          break
        case SLASH:
          out += '/'
          p += 2
          break
        case 0x62: // b
          out += '\b'
          p += 2
          break
        case 0x66: // f
          out += '\f'
          p += 2
          break
        case 0x6e: // n
          out += '\n'
          p += 2
          break
        case 0x72: // r
          out += '\r'
          p += 2
          break
        case 0x74: // t
          out += '\t'
          p += 2
          break
        case 0x75: {
          // u
          const unit = this.readHex4(p + 2, p)
          p += 6
          if (unit >= 0xd800 && unit <= 0xdbff) {
            // A high surrogate must be followed at once by an escaped low surrogate.
            const low =
              text.charCodeAt(p) === BACKSLASH && text.charCodeAt(p + 1) === 0x75 ? this.readHex4(p + 2, p) : -1
            if (low < 0xdc00 || low > 0xdfff) this.fail('LONE_SURROGATE', 'high surrogate escape without a low surrogate', p - 6)
            out += String.fromCharCode(unit, low)
            p += 6
          } else if (unit >= 0xdc00 && unit <= 0xdfff) {
            this.fail('LONE_SURROGATE', 'low surrogate escape without a high surrogate', p - 6)
          } else {
            out += String.fromCharCode(unit)
          }
          break
        }
        default:
          this.fail('SYNTAX', p + 1 >= len ? 'unterminated string' : 'invalid escape sequence', p)
      }
      chunkStart = p
    }
  }

  /** Reads 4 hex digits at `at` (the `\u` escape started at `escapeAt`). */
  private readHex4(at: number, escapeAt: number): number {
    const text = this.text
    const a = hexValue(text.charCodeAt(at))
    const b = hexValue(text.charCodeAt(at + 1))
    const c = hexValue(text.charCodeAt(at + 2))
    const d = hexValue(text.charCodeAt(at + 3))
    if ((a | b | c | d) < 0) this.fail('SYNTAX', 'invalid \\u escape', escapeAt)
    return (a << 12) | (b << 8) | (c << 4) | d
  }

  /** At '-' or a digit. RFC 8259 number grammar; integers must be safe integers. */
  private parseNumber(): number {
    const text = this.text
    const start = this.pos
    let p = start
    let c = text.charCodeAt(p)
    if (c === MINUS) c = text.charCodeAt(++p)
    if (c === ZERO) {
      c = text.charCodeAt(++p)
      if (c >= ZERO && c <= NINE) this.fail('SYNTAX', 'leading zero in number', start)
    } else if (c >= 0x31 && c <= NINE) {
      do {
        c = text.charCodeAt(++p)
      } while (c >= ZERO && c <= NINE)
    } else {
      this.fail('SYNTAX', 'invalid number', start)
    }
    let integer = true
    if (c === DOT) {
      integer = false
      c = text.charCodeAt(++p)
      if (!(c >= ZERO && c <= NINE)) this.fail('SYNTAX', 'digit expected after decimal point', p)
      do {
        c = text.charCodeAt(++p)
      } while (c >= ZERO && c <= NINE)
    }
    if (c === LOWER_E || c === UPPER_E) {
      integer = false
      c = text.charCodeAt(++p)
      if (c === PLUS || c === MINUS) c = text.charCodeAt(++p)
      if (!(c >= ZERO && c <= NINE)) this.fail('SYNTAX', 'digit expected in exponent', p)
      do {
        c = text.charCodeAt(++p)
      } while (c >= ZERO && c <= NINE)
    }
    const literal = text.slice(start, p)
    const n = Number(literal)
    if (!Number.isFinite(n)) this.fail('NUMBER_OUT_OF_RANGE', `number ${literal} is not a finite double`, start)
    if (integer && !Number.isSafeInteger(n)) {
      this.fail('NUMBER_OUT_OF_RANGE', `integer ${literal} is outside ±(2^53−1)`, start)
    }
    this.pos = p
    return n
  }
}

/**
 * Parses a UTF-8 JSON payload whose top level must be an object.
 * Throws MalformedJsonError (with a `reason` code) for anything that is not strict
 * RFC 8259 JSON or breaks the protocol's rules (duplicate names, lone surrogates,
 * unsafe integers, `__proto__`, nesting deeper than `maxDepth`).
 */
export function parseStrictJson(bytes: Uint8Array, opts: StrictJsonOptions = {}): unknown {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('parseStrictJson: bytes must be a Uint8Array')
  const maxDepth = opts.maxDepth ?? DEFAULT_MAX_DEPTH
  if (!Number.isSafeInteger(maxDepth) || maxDepth < 1) {
    throw new RangeError('parseStrictJson: maxDepth must be a positive integer')
  }
  const maxBytes = opts.maxBytes
  if (maxBytes !== undefined && !(maxBytes >= 0)) {
    throw new RangeError('parseStrictJson: maxBytes must be a non-negative number')
  }
  if (maxBytes !== undefined && bytes.length > maxBytes) {
    throw new MalformedJsonError('TOO_LARGE', `payload of ${bytes.length} bytes exceeds ${maxBytes}`, maxBytes)
  }
  if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
    throw new MalformedJsonError('BOM', 'byte order mark is not allowed', 0)
  }
  let text: string
  try {
    text = decoder.decode(bytes)
  } catch {
    throw new MalformedJsonError('INVALID_UTF8', 'payload is not valid UTF-8')
  }
  const value = new Parser(text, maxDepth).parseDocument()
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new MalformedJsonError('NOT_AN_OBJECT', 'top-level value is not an object', 0)
  }
  return value
}
