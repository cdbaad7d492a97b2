// Shared by the strict-JSON test files (strict-json*.test.ts).
import { deepStrictEqual } from 'node:assert/strict'

import { MalformedJsonError, type MalformedJsonReason } from '../src/protocol/strict-json.js'

export const enc = new TextEncoder()

/**
 * Deep equality that also compares prototypes and tells -0 from 0. (Vitest's
 * toStrictEqual compares `a.constructor === b.constructor`, which is wrong for
 * objects that carry "constructor" as an ordinary data member.)
 */
export function expectSame(actual: unknown, expected: unknown): void {
  deepStrictEqual(actual, expected)
}

/** Bytes from a mix of text (encoded as UTF-8) and raw byte arrays. */
export function bytes(...parts: Array<string | number[]>): Uint8Array {
  const chunks = parts.map((p) => (typeof p === 'string' ? enc.encode(p) : Uint8Array.from(p)))
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0))
  let at = 0
  for (const c of chunks) {
    out.set(c, at)
    at += c.length
  }
  return out
}

export function reasonOf(fn: () => unknown): MalformedJsonReason | 'NO_ERROR' {
  try {
    fn()
  } catch (e) {
    if (e instanceof MalformedJsonError) return e.reason
    throw e // RangeError (stack overflow), TypeError, …: a bug, surface it
  }
  return 'NO_ERROR'
}

export const deepArrays = (n: number): string => '['.repeat(n) + ']'.repeat(n)
export const deepObjects = (n: number): string => '{"a":'.repeat(n) + '1' + '}'.repeat(n)
