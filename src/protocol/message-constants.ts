// The protocol's constants (SPEC.md), apart from the schemas so that importing them
// costs nothing: limits, error codes, message types. Used by the TypeBox declarations
// (message-schemas.ts, build time) and by the runtime (messages.ts).

/** Limits stated in SPEC.md. String lengths count Unicode code points (JSON Schema semantics). */
export const LIMITS = Object.freeze({
  nameMax: 64,
  publicKeyMax: 1024,
  sessionIdMax: 64,
  sdpMax: 32_768,
  candidateMax: 1024,
  sdpMidMax: 64,
  usernameFragmentMax: 256,
  reasonMax: 256,
  errorMessageMax: 512,
  expiresInSecMax: 600,
  maxAttemptsMax: 10,
})

import { AppErrorCode } from '../base/codes.js'
import type { AppErrorName } from '../base/error-codes.js'

/** Application error codes (SPEC.md, "Errors"): the same table as `AppErrorCode`. */
export const ErrorCode = AppErrorCode
export type ErrorName = AppErrorName
export const ERROR_NAMES: readonly ErrorName[] = ['PROTOCOL_ERROR', 'UNAUTHORIZED', 'UNSUPPORTED_MESSAGE', 'CONFLICT', 'INTERNAL_ERROR']

/** Every message type of the control channel (SPEC.md §5). */
export const MESSAGE_TYPES = [
  'PAIR_REQUEST',
  'PAIR_ACCEPTED',
  'PAIR_REJECTED',
  'PIN_PAIRING_INIT',
  'PIN_REQUIRED',
  'PIN_SUBMIT',
  'NOISE_EVENT',
  'START_STREAM_REQUEST',
  'START_STREAM_RESPONSE',
  'END_STREAM',
  'PIN_STREAM',
  'WEBRTC_OFFER',
  'WEBRTC_ANSWER',
  'WEBRTC_ICE',
  'PING',
  'PONG',
  'ERROR',
] as const

export type MessageType = (typeof MESSAGE_TYPES)[number]
