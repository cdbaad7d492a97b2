// Explicit facts from SPEC.md §5/§6 used as oracles by the protocol-layer tests (malformed
// input, property-based frames); written out by hand, never derived from the code.
import type { ErrorName, MessageType } from '../src/index.js'

/** §6 code table. */
export const CODE_OF: Readonly<Record<ErrorName, number>> = {
  PROTOCOL_ERROR: 1,
  UNAUTHORIZED: 2,
  UNSUPPORTED_MESSAGE: 3,
  CONFLICT: 4,
  INTERNAL_ERROR: 5,
}
/** §5 sender column. */
export const SENDER: Readonly<Record<MessageType, 'listener' | 'monitor' | 'either'>> = {
  PAIR_REQUEST: 'listener',
  PAIR_ACCEPTED: 'monitor',
  PAIR_REJECTED: 'monitor',
  PIN_PAIRING_INIT: 'listener',
  PIN_REQUIRED: 'monitor',
  PIN_SUBMIT: 'listener',
  NOISE_EVENT: 'monitor',
  START_STREAM_REQUEST: 'listener',
  START_STREAM_RESPONSE: 'monitor',
  END_STREAM: 'either',
  PIN_STREAM: 'listener',
  WEBRTC_OFFER: 'either',
  WEBRTC_ANSWER: 'either',
  WEBRTC_ICE: 'either',
  PING: 'either',
  PONG: 'either',
  ERROR: 'either',
}
/** §6 pairing messages. */
export const PAIRING = new Set<string>(['PAIR_REQUEST', 'PIN_PAIRING_INIT', 'PIN_SUBMIT', 'PAIR_ACCEPTED', 'PAIR_REJECTED', 'PIN_REQUIRED', 'ERROR'])
export const TYPE_RE = /^[A-Z][A-Z0-9_]{0,39}$/
