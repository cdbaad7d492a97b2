import { AppErrorCode } from './codes.js'

/**
 * Every `code` a {@link CribcallError} can carry: the one list, so `err.code` is a
 * string-literal union a `switch` can be checked against. test/one-source.test.ts fails
 * when the native addon (Rust) or the TypeScript sources use a code not listed here.
 */
export const ERROR_CODES = [
  // transport (most also come from the native addon)
  'ERR_INVALID_ARG',
  'ERR_BIND',
  'ERR_TLS',
  'ERR_SOCKET',
  'ERR_INTERNAL',
  'ERR_ENDPOINT_CLOSED',
  'ERR_CONNECTION_CLOSED',
  'ERR_NOT_CONNECTED',
  'ERR_TOO_MANY_CONNECTIONS',
  'ERR_FRAME_EMPTY',
  'ERR_FRAME_TOO_LARGE',
  'ERR_SEND_BUFFER_FULL',
  'ERR_PIN_MISMATCH',
  'ERR_PEER_REJECTED',
  'ERR_HANDSHAKE_TIMEOUT',
  'ERR_HANDSHAKE_FAILED',
  'ERR_IDLE_TIMEOUT',
  'ERR_CONNECTION_RESET',
  'ERR_CONNECTION_REFUSED',
  'ERR_HANDLER',
  'ABORT_ERR',
  // PIN pairing's PAKE (native)
  'ERR_PAKE_INVALID_POINT',
  'ERR_PAKE_DESTROYED',
  // protocol
  'ERR_INVALID_MESSAGE',
  'ERR_UNAUTHORIZED',
  'ERR_NOT_ALLOWED',
  'ERR_CONFLICT',
  'ERR_ITERATOR_OVERFLOW',
  'ERR_PING',
  'ERR_PONG',
  'ERR_PING_TIMEOUT',
  // pairing and roles
  'ERR_BAD_QR',
  'ERR_PAIRING_REJECTED',
  'ERR_PAIRING_FAILED',
  'ERR_PAIRING_CLOSED',
  'ERR_NOT_PAIRED',
  'ERR_MONITOR_CLOSED',
  'ERR_LISTENER_CLOSED',
  // stores
  'ERR_TRUST_STORE',
  'ERR_IDENTITY_CORRUPT',
  'ERR_STORE_LOCKED',
  // the cribcall-agent CLI
  'ERR_USAGE',
  'ERR_FAILED',
  'ERR_NOT_FOUND',
  'ERR_TIMEOUT',
  'ERR_INTERRUPTED',
  'ERR_PERMISSION',
  'ERR_WEB_CONSOLE',
  'ERR_WEB_NOT_LOOPBACK',
] as const

/** The name of an application error code other than OK (SPEC.md §6). */
export type AppErrorName = Exclude<keyof typeof AppErrorCode, 'OK'>

/** The code of a ProtocolError: `ERR_PROTOCOL_` and the SPEC's error name. */
export type ProtocolErrorCode = `ERR_PROTOCOL_${AppErrorName}`

/** The `code` of a {@link CribcallError}. */
export type CribcallErrorCode = (typeof ERROR_CODES)[number] | ProtocolErrorCode

const KNOWN: ReadonlySet<string> = new Set<string>([
  ...ERROR_CODES,
  ...Object.keys(AppErrorCode)
    .filter((name) => name !== 'OK')
    .map((name) => `ERR_PROTOCOL_${name}`),
])

/** Whether `code` is one of {@link ERROR_CODES}. */
export function isErrorCode(code: string): code is CribcallErrorCode {
  return KNOWN.has(code)
}
