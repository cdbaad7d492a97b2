// What cribcall-agent prints: one JSON object per line with --json, else human lines;
// every error is one line with its code; exit codes. Loads nothing of the library but
// its error classes, so `--help` and `--version` stay fast.
import { CribcallError } from '../index.js'

interface Out {
  json: boolean
  debug: boolean
}

/** Set from the global --json / --debug flags before any command runs. */
export const out: Out = { json: false, debug: false }

/** Exit codes (documented in the README, "Errors and exit status"). */
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  /** watch: every paired monitor revoked or refused this listener. */
  REVOKED: 3,
  /** Interrupted by Ctrl-C (pair, a prompt), or a second Ctrl-C while closing. */
  INTERRUPTED: 130,
} as const

/** One event: a JSON line with --json, else a human line. */
export function emit(event: string, fields: Record<string, unknown>, human: string): void {
  if (out.json) process.stdout.write(JSON.stringify({ event, ...fields }) + '\n')
  else process.stdout.write(human + '\n')
}

/** Bad input from the user: exit 2. */
export class UsageError extends Error {
  readonly code: string
  constructor(message: string, code = 'ERR_USAGE') {
    super(message)
    this.code = code
  }
}

/** The `error` code of a failure: the library's code, ERR_USAGE for bad input, else ERR_FAILED. */
export function codeOf(e: unknown): string {
  if (e instanceof CribcallError || e instanceof UsageError) return e.code
  return 'ERR_FAILED'
}

/** One line, whatever the message holds. */
export function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim()
}

/** `message [CODE]`: every error line carries its code. */
function errorLine(message: string, code: string): string {
  return `cribcall-agent: ${message} [${code}]\n`
}

/** A non-fatal error: an `error` event with --json, else a line on stderr. */
export function warn(e: unknown, extra: Record<string, unknown> = {}): void {
  const code = codeOf(e)
  const message = oneLine(e instanceof Error ? e.message : String(e))
  if (out.json) process.stdout.write(JSON.stringify({ event: 'error', code, message, ...extra }) + '\n')
  else process.stderr.write(errorLine(message, code))
  if (out.debug && e instanceof Error && e.stack !== undefined) process.stderr.write(e.stack + '\n')
}

/**
 * A fatal error: one line on stderr (plus an `error` event with --json; the stack only
 * with --debug), then exit 2 for bad usage, 1 otherwise.
 */
export function fail(e: unknown): never {
  const code = codeOf(e)
  const message = oneLine(e instanceof Error ? e.message : String(e))
  if (out.json) process.stdout.write(JSON.stringify({ event: 'error', code, message }) + '\n')
  process.stderr.write(errorLine(message, code))
  if (out.debug && e instanceof Error && e.stack !== undefined) process.stderr.write(e.stack + '\n')
  process.exit(e instanceof UsageError ? EXIT.USAGE : EXIT.FAILURE)
}

/** A usage error found by the option parser (commander): the same one line, exit 2. */
export function usageLine(message: string, json: boolean): string {
  if (json) process.stdout.write(JSON.stringify({ event: 'error', code: 'ERR_USAGE', message }) + '\n')
  return `cribcall-agent: ${message} (see 'cribcall-agent --help') [ERR_USAGE]\n`
}

/** --json before a `--` (usable before commander parsed anything). */
export function jsonRequested(argv: readonly string[]): boolean {
  const end = argv.indexOf('--')
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json')
}

/** A time for people: local, with the date when it is not today. */
export function localTime(ms: number, now = Date.now()): string {
  const d = new Date(ms)
  const time = d.toLocaleTimeString(undefined, { hour12: false })
  return new Date(now).toDateString() === d.toDateString() ? time : `${d.toLocaleDateString()} ${time}`
}

/** `code reason` of a close, without a dangling space when there is no reason. */
export function closeText(code: number, reason: string): string {
  return reason === '' ? `code ${code}` : `${reason}, code ${code}`
}
