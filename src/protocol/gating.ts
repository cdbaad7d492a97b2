// The gating rules of SPEC.md §6, as a pure function: given what arrived and the
// channel's state, decide whether the message is accepted or which error answers it.
import { parseStrictJson, MalformedJsonError } from './strict-json.js'
import {
  ErrorCode,
  MESSAGE_RULES,
  isMessageType,
  schemaError,
  type ErrorName,
  type Message,
  type MessageType,
} from './messages.js'

export type ChannelRole = 'monitor' | 'listener'
export type Trust = 'pairing-only' | 'trusted'

/** What the channel knows when it judges an incoming frame. */
export interface GateState {
  /** Our role; the peer has the other one. */
  readonly role: ChannelRole
  readonly trust: Trust
  /** Stream sessions currently live on this channel (START_STREAM_REQUEST seen, not ended). */
  readonly liveSessions: ReadonlySet<string>
  /** Parser depth limit. */
  readonly maxDepth?: number
}

export type Verdict =
  | { readonly accept: true; readonly message: Message }
  | {
      readonly accept: false
      readonly error: ErrorName
      readonly code: number
      /** Close the connection after the ERROR frame. */
      readonly close: boolean
      readonly detail: string
      /** The offending type when it was readable (goes into ERROR.inReplyTo). */
      readonly inReplyTo?: string
    }

const TYPE_NAME = /^[A-Z][A-Z0-9_]{0,39}$/

function reject(error: ErrorName, close: boolean, detail: string, inReplyTo?: string): Verdict {
  return { accept: false, error, code: ErrorCode[error], close, detail, ...(inReplyTo === undefined ? {} : { inReplyTo }) }
}

export function peerRole(role: ChannelRole): ChannelRole {
  return role === 'monitor' ? 'listener' : 'monitor'
}

/** May `role` send messages of `type` while the channel has trust `trust`? */
export function maySend(role: ChannelRole, trust: Trust, type: MessageType): 'ok' | 'role' | 'trust' {
  const rule = MESSAGE_RULES[type]
  if (rule.sender !== 'either' && rule.sender !== role) return 'role'
  if (trust === 'pairing-only' && !rule.pairing) return 'trust'
  return 'ok'
}

/**
 * Judges one received frame payload. Order (SPEC.md §6): well-formed JSON object →
 * `type` present and well-formed → known type → allowed for the peer's role →
 * allowed at this trust → fields valid → stream-session state.
 */
export function judgeFrame(payload: Uint8Array, state: GateState): Verdict {
  let value: unknown
  try {
    value = parseStrictJson(payload, state.maxDepth === undefined ? {} : { maxDepth: state.maxDepth })
  } catch (e) {
    if (e instanceof MalformedJsonError) return reject('PROTOCOL_ERROR', true, `malformed JSON (${e.reason})`)
    throw e
  }
  const obj = value as Record<string, unknown>
  const type = obj.type
  if (typeof type !== 'string') return reject('PROTOCOL_ERROR', true, 'missing or non-string "type"')
  if (!TYPE_NAME.test(type)) return reject('PROTOCOL_ERROR', true, 'ill-formed "type"')
  const untrusted = state.trust === 'pairing-only'
  if (!isMessageType(type)) return reject('UNSUPPORTED_MESSAGE', untrusted, `unknown message type ${type}`, type)
  const sender = peerRole(state.role)
  const allowed = maySend(sender, state.trust, type)
  if (allowed === 'role') return reject('UNSUPPORTED_MESSAGE', untrusted, `a ${sender} may not send ${type}`, type)
  if (allowed === 'trust') return reject('UNAUTHORIZED', true, `${type} needs a paired device`, type)
  const invalid = schemaError(type, value)
  if (invalid !== null) return reject('PROTOCOL_ERROR', true, invalid, type)
  const message = value as Message
  if (message.type === 'START_STREAM_REQUEST' && state.liveSessions.has(message.sessionId)) {
    return reject('CONFLICT', false, `stream session ${message.sessionId} is already live`, type)
  }
  return { accept: true, message }
}
