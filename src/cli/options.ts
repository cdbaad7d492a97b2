// Parsers and defaults of cribcall-agent's options. A bad value is a UsageError (exit 2).
import { homedir } from 'node:os'
import path from 'node:path'
import { parseFingerprint as parseFingerprintText } from '../base/formats.js'
import { LIMITS } from '../protocol/message-constants.js'
import { UsageError } from './output.js'

/** The platform's config location: XDG on Linux, Application Support on macOS, APPDATA on Windows. */
export function defaultDir(): string {
  if (process.env.CRIBCALL_AGENT_DIR !== undefined && process.env.CRIBCALL_AGENT_DIR !== '') return process.env.CRIBCALL_AGENT_DIR
  if (process.platform === 'win32') return path.join(process.env.APPDATA ?? path.join(homedir(), 'AppData', 'Roaming'), 'cribcall-agent')
  if (process.platform === 'darwin') return path.join(homedir(), 'Library', 'Application Support', 'cribcall-agent')
  const xdg = process.env.XDG_CONFIG_HOME
  return path.join(xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(homedir(), '.config'), 'cribcall-agent')
}

/** The monitor port when neither --port nor a QR payload gives one. */
export const DEFAULT_PORT = 48080

export const PIN_RE = /^\d{6}$/

export function parsePort(v: string): number {
  const n = Number(v)
  if (!/^\d+$/.test(v) || !Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`invalid port '${v}'`)
  return n
}

export function parseFingerprint(v: string): string {
  const f = parseFingerprintText(v)
  if (f === undefined) throw new UsageError(`invalid fingerprint '${v}' (expected 64 hex digits, the SHA-256 of the monitor certificate)`)
  return f
}

export function parsePositive(v: string): number {
  const n = Number(v)
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`expected a positive number, got '${v}'`)
  return n
}

/** A device name: not empty or blank, at most LIMITS.nameMax characters (SPEC.md's name rule). */
export function parseName(v: string): string {
  const name = v.trim()
  if (name === '') throw new UsageError('a name must not be empty')
  const length = [...name].length
  if (length > LIMITS.nameMax) throw new UsageError(`a name is at most ${LIMITS.nameMax} characters, got ${length}`)
  return name
}

/** --dir: a directory path, never empty (that would mean the current directory). */
export function parseDir(v: string): string {
  if (v.trim() === '') throw new UsageError('--dir must not be empty')
  return v
}

/** `--web [HOST:]PORT` (IPv6 in brackets; default host 127.0.0.1). */
export function parseWebListen(v: string): { host: string; port: number } {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):)?(\d{1,5})$/.exec(v)
  if (m === null) throw new UsageError(`invalid --web '${v}' (expected [HOST:]PORT, e.g. 8080, 127.0.0.1:8080 or [::1]:8080)`)
  return { host: m[1]?.replace(/^\[|\]$/g, '') ?? '127.0.0.1', port: parsePort(m[2] as string) }
}
