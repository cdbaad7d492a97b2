// Rules that exist in both languages must agree: the application error codes
// (native/core/src/codes.rs ↔ src/base/codes.ts), the fingerprint format (what the Rust
// identity code writes ↔ src/base/formats.ts), and the Endpoint defaults the README
// documents (native/core/src/limits.rs ↔ README). Read from the Rust sources, so a
// change on one side that is not made on the other fails here.
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { AppErrorCode } from '../src/base/codes.js'
import { ERROR_CODES, isErrorCode } from '../src/base/error-codes.js'
import { FINGERPRINT_PATTERN, isFingerprint, parseFingerprint } from '../src/base/formats.js'
import { ErrorCode, fingerprintOf, generateIdentity } from '../src/index.js'
import { DeviceId, Fingerprint } from '../src/protocol/message-schemas.js'

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..')
const read = (p: string): string => readFileSync(path.join(ROOT, p), 'utf8')

/** Every file under `dir` (relative to the root) whose name ends with `ext`. */
function sources(dir: string, ext: string): string[] {
  return readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith(ext))
    .map((f) => path.join(dir, f))
}

describe('one source per rule', () => {
  it('every error code the native addon or the TypeScript sources use is in ERROR_CODES', () => {
    const used = new Map<string, string>()
    const files = [...sources('native', '.rs').filter((f) => !f.includes('target')), ...sources('src', '.ts')]
    for (const file of files) {
      for (const m of read(file).matchAll(/["'`](ERR_[A-Z0-9_]*[A-Z0-9]|ABORT_ERR)["'`]/g)) used.set(m[1]!, file)
    }
    expect(used.size).toBeGreaterThanOrEqual(30)
    const unknown = [...used].filter(([code]) => !isErrorCode(code))
    expect(unknown).toEqual([])
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length)
    expect(isErrorCode('ERR_PROTOCOL_UNAUTHORIZED')).toBe(true)
    expect(isErrorCode('ERR_PROTOCOL_OK')).toBe(false)
  })

  it('the application error codes are the same table in Rust and TypeScript', () => {
    const rust = Object.fromEntries([...read('native/core/src/codes.rs').matchAll(/pub const ([A-Z_]+): u64 = (\d+);/g)].map((m) => [m[1], Number(m[2])]))
    expect(Object.keys(rust).length).toBeGreaterThanOrEqual(6)
    expect({ ...AppErrorCode }).toEqual(rust)
    expect(ErrorCode).toBe(AppErrorCode)
  })

  it('the fingerprint format is what the Rust side writes, and the schemas use the same patterns', () => {
    for (const keyType of ['p256', 'ed25519'] as const) {
      const id = generateIdentity({ keyType })
      expect(isFingerprint(id.fingerprint)).toBe(true)
      expect(isFingerprint(fingerprintOf(id.certDer))).toBe(true)
      expect(parseFingerprint(id.fingerprint.toUpperCase().replace(/(..)(?!$)/g, '$1:'))).toBe(id.fingerprint)
    }
    expect(isFingerprint('A'.repeat(64))).toBe(false)
    expect(Fingerprint.pattern).toBe(FINGERPRINT_PATTERN)
    expect(new RegExp(DeviceId.pattern as string).test(generateIdentity().deviceId)).toBe(true)
  })

  it("the Endpoint defaults the README states are native/core/src/limits.rs's", () => {
    const limits = read('native/core/src/limits.rs')
    const value = (name: string): number => {
      const m = new RegExp(`pub const ${name}: [^=]+= ([^;]+);`).exec(limits)
      if (m === null) throw new Error(`${name} not in limits.rs`)
      const expr = (m[1] as string).replace(/(\d)_(?=\d)/g, '$1')
      const secs = /^Duration::from_secs\((\d+)\)$/.exec(expr)
      if (secs) return Number(secs[1]) * 1000
      const shift = /^(\d+) << (\d+)$/.exec(expr)
      if (shift) return Number(shift[1]) * 2 ** Number(shift[2])
      return Number(expr)
    }
    const readme = read('README.md').replace(/\s+/g, ' ')
    const stated = (option: string): string => {
      const m = new RegExp(`${option} = ([0-9][0-9 ]*(?:MiB)?)`).exec(readme)
      if (m === null) throw new Error(`README states no default for ${option}`)
      return (m[1] as string).trim()
    }
    const rows: Array<[string, string, (v: number) => string]> = [
      ['handshakeTimeoutMs', 'DEFAULT_HANDSHAKE_TIMEOUT', String],
      ['idleTimeoutMs', 'DEFAULT_IDLE_TIMEOUT', String],
      ['keepAliveMs', 'DEFAULT_KEEP_ALIVE', String],
      ['maxConnections', 'DEFAULT_MAX_CONNECTIONS', String],
      ['maxSendBuffer', 'DEFAULT_MAX_SEND_BUFFER', (v) => `${v / 2 ** 20} MiB`],
      ['maxHalfOpen', 'DEFAULT_MAX_HALF_OPEN', String],
      ['retryThreshold', 'DEFAULT_RETRY_THRESHOLD', String],
      ['maxPairingConnections', 'DEFAULT_MAX_PAIRING_CONNECTIONS', String],
      ['pairingDeadlineMs', 'DEFAULT_PAIRING_DEADLINE', String],
      ['frameTimeoutMs', 'DEFAULT_FRAME_TIMEOUT', String],
    ]
    for (const [option, constant, show] of rows) expect(`${option} = ${stated(option)}`).toBe(`${option} = ${show(value(constant))}`)
  })
})
