// The options of Endpoint.bind and connect: checked where they are given (every bound
// stated once, in the table below), and turned into the native addon's options. The
// native side applies the defaults (native/core/src/limits.rs).
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'

import { isFingerprint } from '../base/formats.js'
import type { EndpointOptions } from './endpoint-types.js'
import { AbortError, InvalidArgumentError } from './errors.js'
import type { NativeEndpointOptions } from './native.js'

export function describe(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value)
}

export function checkHost(host: unknown, what: string): asserts host is string {
  if (typeof host !== 'string' || host.length === 0) {
    throw new InvalidArgumentError(`${what} must be a non-empty string, got ${describe(host)}`)
  }
}

export function checkPort(port: unknown, min: number, what: string): asserts port is number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < min || port > 65535) {
    throw new InvalidArgumentError(`${what} must be an integer in ${min}..65535, got ${describe(port)}`)
  }
}

/** Numeric options cross into native code as u32. */
const U32_MAX = 0xffff_ffff

export function checkOptionalInt(value: unknown, name: string, min: number): asserts value is number | undefined {
  if (value === undefined) return
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > U32_MAX) {
    throw new InvalidArgumentError(`${name} must be an integer in ${min}..${U32_MAX}, got ${describe(value)}`)
  }
}

export function checkSignal(signal: unknown): asserts signal is AbortSignal | undefined {
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new InvalidArgumentError('signal must be an AbortSignal')
  }
}

export function normalizeFingerprint(value: unknown, name: string): string {
  const fp = typeof value === 'string' ? value.toLowerCase() : ''
  if (!isFingerprint(fp)) {
    throw new InvalidArgumentError(`${name} must be 64 hexadecimal characters (SHA-256), got ${describe(value)}`)
  }
  return fp
}

export async function resolveHost(host: string): Promise<string> {
  if (isIP(host) !== 0) return host
  try {
    return (await lookup(host)).address
  } catch (error) {
    throw new InvalidArgumentError(`cannot resolve host ${JSON.stringify(host)}`, { cause: error })
  }
}

/** The numeric options and their minimum; each crosses under the same name as a u32. */
export const NUMERIC_OPTIONS = [
  ['maxFramePayload', 1],
  ['handshakeTimeoutMs', 1],
  ['idleTimeoutMs', 1],
  ['keepAliveMs', 0],
  ['maxConnections', 1],
  ['maxSendBuffer', 1024],
  ['maxHalfOpen', 1],
  ['retryThreshold', 0],
  ['pairingDeadlineMs', 1],
  ['maxPairingConnections', 1],
  ['frameTimeoutMs', 1],
] as const satisfies ReadonlyArray<readonly [keyof EndpointOptions & keyof NativeEndpointOptions, number]>

/**
 * Checks Endpoint.bind's options (InvalidArgumentError names the first bad one; an
 * aborted signal is AbortError), resolves the host, and returns the native options.
 */
export async function toNativeOptions(options: EndpointOptions): Promise<{ nativeOptions: NativeEndpointOptions; signal: AbortSignal | undefined }> {
  const { host, port, identity, signal } = options
  checkHost(host, 'host')
  checkPort(port, 0, 'port')
  if (identity === null || typeof identity !== 'object' || typeof identity.certPem !== 'string' || typeof identity.keyPem !== 'string') {
    throw new InvalidArgumentError('identity must provide certPem and keyPem strings')
  }
  for (const [name, min] of NUMERIC_OPTIONS) checkOptionalInt(options[name], name, min)
  if (options.retry !== undefined && typeof options.retry !== 'boolean') {
    throw new InvalidArgumentError(`retry must be a boolean, got ${describe(options.retry)}`)
  }
  if (options.retryThreshold !== undefined && options.retryThreshold > 0x7fff_ffff) {
    throw new InvalidArgumentError(`retryThreshold must be at most ${0x7fff_ffff}`)
  }
  checkSignal(signal)
  if (signal?.aborted) throw new AbortError(signal.reason)
  const address = await resolveHost(host)
  if (signal?.aborted) throw new AbortError(signal.reason)

  const nativeOptions: NativeEndpointOptions = { host: address, port, certPem: identity.certPem, keyPem: identity.keyPem }
  for (const [name] of NUMERIC_OPTIONS) {
    const value = options[name]
    if (value !== undefined) nativeOptions[name] = value
  }
  // retry: false is "never": a negative threshold natively.
  if (options.retry === false) nativeOptions.retryThreshold = -1
  return { nativeOptions, signal }
}
