// fast-check arbitraries for the property-based frame tests: generated valid messages of
// every type, mutations of their bytes or objects, and the SPEC.md §6 invariants every
// verdict of judgeFrame satisfies.
import fc from 'fast-check'

import { canonicalBytes, judgeFrame, schemaError, type ErrorName, type Message, type MessageType, type Verdict } from '../src/index.js'
import { bytesOf, utf8 } from './protocol-helpers.js'
import { CODE_OF, PAIRING, SENDER, TYPE_RE } from './spec-oracles.js'

const str = (maxLength: number, minLength = 0): fc.Arbitrary<string> => fc.string({ unit: 'binary', minLength, maxLength })
const hexBytes = (n: number): fc.Arbitrary<string> => fc.uint8Array({ minLength: n, maxLength: n }).map((b) => Buffer.from(b).toString('hex'))
const b64 = (min: number, max: number): fc.Arbitrary<string> =>
  fc.uint8Array({ minLength: min, maxLength: max }).map((b) => Buffer.from(b).toString('base64'))
const uuid = fc.oneof(fc.uuid(), fc.uuid().map((u) => u.toUpperCase()))
const fingerprint = hexBytes(32)
const b64x32 = b64(32, 32)
const publicKey = b64(3, 768)
const name = str(64, 1)
const sessionId = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/)
const timestamp = fc.oneof(fc.integer({ min: 0, max: 2_000_000_000_000 }), fc.maxSafeNat())
const errorName = fc.constantFrom<ErrorName>('PROTOCOL_ERROR', 'UNAUTHORIZED', 'UNSUPPORTED_MESSAGE', 'CONFLICT', 'INTERNAL_ERROR')
const typeName = fc.stringMatching(/^[A-Z][A-Z0-9_]{0,39}$/)
const nullable = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | null> => fc.option(a, { nil: null })

const messageArbs: { [T in MessageType]: fc.Arbitrary<Extract<Message, { type: T }>> } = {
  PAIR_REQUEST: fc.record({
    type: fc.constant('PAIR_REQUEST'),
    listenerId: uuid,
    listenerName: name,
    listenerPublicKey: publicKey,
    listenerCertFingerprint: fingerprint,
  }),
  PAIR_ACCEPTED: fc.record({ type: fc.constant('PAIR_ACCEPTED'), monitorId: uuid, authTag: b64x32 }, { requiredKeys: ['type', 'monitorId'] }),
  PAIR_REJECTED: fc.record({
    type: fc.constant('PAIR_REJECTED'),
    reason: fc.constantFrom('INVALID_PIN', 'EXPIRED', 'INTERNAL_ERROR', 'LOCKED', 'NOT_PAIRING'),
  }),
  PIN_PAIRING_INIT: fc.record({
    type: fc.constant('PIN_PAIRING_INIT'),
    listenerId: uuid,
    listenerName: name,
    protocolVersion: fc.constant(1),
    listenerCertFingerprint: fingerprint,
  }),
  PIN_REQUIRED: fc.record({
    type: fc.constant('PIN_REQUIRED'),
    monitorId: uuid,
    pairingSessionId: sessionId,
    pakeMsgA: b64x32,
    expiresInSec: fc.integer({ min: 1, max: 600 }),
    maxAttempts: fc.integer({ min: 1, max: 10 }),
  }),
  PIN_SUBMIT: fc.record({
    type: fc.constant('PIN_SUBMIT'),
    pairingSessionId: sessionId,
    pakeMsgB: b64x32,
    transcript: fc.record({
      monitorId: uuid,
      listenerId: uuid,
      listenerPublicKey: publicKey,
      listenerCertFingerprint: fingerprint,
      monitorCertFingerprint: fingerprint,
      pairingSessionId: sessionId,
    }),
    authTag: b64x32,
  }),
  NOISE_EVENT: fc.record({ type: fc.constant('NOISE_EVENT'), monitorId: uuid, timestamp, peakLevel: fc.integer({ min: 0, max: 100 }) }),
  START_STREAM_REQUEST: fc.record({
    type: fc.constant('START_STREAM_REQUEST'),
    sessionId,
    mediaType: fc.constantFrom('audio', 'audio_video'),
  }),
  START_STREAM_RESPONSE: fc.record(
    { type: fc.constant('START_STREAM_RESPONSE'), sessionId, accepted: fc.boolean(), reason: str(256) },
    { requiredKeys: ['type', 'sessionId', 'accepted'] },
  ),
  END_STREAM: fc.record({ type: fc.constant('END_STREAM'), sessionId }),
  PIN_STREAM: fc.record({ type: fc.constant('PIN_STREAM'), sessionId }),
  WEBRTC_OFFER: fc.record({ type: fc.constant('WEBRTC_OFFER'), sessionId, sdp: str(32_768, 1) }),
  WEBRTC_ANSWER: fc.record({ type: fc.constant('WEBRTC_ANSWER'), sessionId, sdp: str(32_768, 1) }),
  WEBRTC_ICE: fc.record({
    type: fc.constant('WEBRTC_ICE'),
    sessionId,
    candidate: fc.record(
      {
        candidate: str(1024),
        sdpMid: nullable(str(64)),
        sdpMLineIndex: nullable(fc.integer({ min: 0, max: 65_535 })),
        usernameFragment: nullable(str(256)),
      },
      { requiredKeys: ['candidate'] },
    ),
  }),
  PING: fc.record({ type: fc.constant('PING'), timestamp }),
  PONG: fc.record({ type: fc.constant('PONG'), timestamp }),
  ERROR: fc
    .record(
      { error: errorName, message: str(512), inReplyTo: typeName },
      { requiredKeys: ['error'] },
    )
    .map((e) => ({ type: 'ERROR' as const, code: CODE_OF[e.error], ...e })),
}
export const anyMessage: fc.Arbitrary<Message> = fc.oneof(...(Object.values(messageArbs) as fc.Arbitrary<Message>[]))

/** A mutation of a valid message's bytes or object. */
export type Mutation = (msg: Record<string, unknown>, bytes: Buffer) => Buffer
const KEYS_POOL = ['type', 'timestamp', 'sessionId', 'monitorId', 'code', 'error', 'x', '', 'constructor', 'toString', '\u00e9']
export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  // byte flips (1–3 positions)
  fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 3 }).map((flips) => (_m: Record<string, unknown>, b: Buffer) => {
    const out = Buffer.from(b)
    for (const [at, x] of flips) out[at % out.length]! ^= x
    return out
  }),
  // truncation (never empty: the transport refuses empty frames)
  fc.nat().map((n) => (_m: Record<string, unknown>, b: Buffer) => b.subarray(0, 1 + (n % Math.max(1, b.length - 1)))),
  // a byte inserted or deleted
  fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.boolean()).map(([at, byte, insert]) => (_m: Record<string, unknown>, b: Buffer) => {
    const i = at % b.length
    return insert ? Buffer.concat([b.subarray(0, i), Buffer.from([byte]), b.subarray(i)]) : Buffer.concat([b.subarray(0, i), b.subarray(i + 1)])
  }),
  // a member deleted (type included)
  fc.nat().map((n) => (m: Record<string, unknown>) => {
    const keys = Object.keys(m)
    const copy = { ...m }
    delete copy[keys[n % keys.length]!]
    return bytesOf(copy)
  }),
  // a member added or overwritten with any JSON value
  fc.tuple(fc.constantFrom(...KEYS_POOL), fc.jsonValue({ maxDepth: 3 })).map(([k, v]) => (m: Record<string, unknown>) => bytesOf({ ...m, [k]: v })),
  // an existing member's value replaced
  fc.tuple(fc.nat(), fc.jsonValue({ maxDepth: 2 })).map(([n, v]) => (m: Record<string, unknown>) => {
    const keys = Object.keys(m)
    return bytesOf({ ...m, [keys[n % keys.length]!]: v })
  }),
  // the type swapped: another known type, an unknown one, or an ill-formed one
  fc
    .oneof(fc.constantFrom(...(Object.keys(SENDER) as string[])), typeName, fc.constantFrom('', 'ping', 'PING ', 'A'.repeat(41)), fc.jsonValue({ maxDepth: 1 }))
    .map((t) => (m: Record<string, unknown>) => bytesOf({ ...m, type: t })),
  // a duplicate of the first member, or __proto__, spliced in textually
  fc.constantFrom('dup', 'proto', 'bom', 'wrap').map((how) => (_m: Record<string, unknown>, b: Buffer) => {
    const text = b.toString('utf8')
    if (how === 'bom') return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), b])
    if (how === 'wrap') return utf8(`[${text}]`)
    const firstMember = /^\{("[^"]*":(?:"[^"]*"|[^,}]*))/.exec(text)?.[1] ?? '"x":1'
    return utf8(`{${how === 'dup' ? firstMember : '"__proto__":1'},${text.slice(1)}`)
  }),
  // the sessionId set to one that is live in some states (CONFLICT for START_STREAM_REQUEST)
  fc.constantFrom('stream-1', 'a', '0').map((id) => (m: Record<string, unknown>) => bytesOf({ ...m, sessionId: id })),
  // two messages concatenated
  anyMessage.map((other) => (_m: Record<string, unknown>, b: Buffer) => Buffer.concat([b, bytesOf(other)])),
)

export const STATES = [
  { role: 'monitor', trust: 'pairing-only' },
  { role: 'monitor', trust: 'trusted' },
  { role: 'listener', trust: 'pairing-only' },
  { role: 'listener', trust: 'trusted' },
] as const

/** Invariants every verdict satisfies, from SPEC.md §6 (throws an Error when broken). */
export function checkVerdict(v: Verdict, state: (typeof STATES)[number], live: ReadonlySet<string>): void {
  if (typeof v !== 'object' || v === null) throw new Error('no verdict')
  if (v.accept) {
    const m = v.message as Record<string, unknown>
    const type = m.type as MessageType
    if (!(type in SENDER)) throw new Error(`accepted an unknown type ${String(type)}`)
    const peer = state.role === 'monitor' ? 'listener' : 'monitor'
    if (SENDER[type] !== 'either' && SENDER[type] !== peer) throw new Error(`accepted ${type} from a ${peer}`)
    if (state.trust === 'pairing-only' && !PAIRING.has(type)) throw new Error(`accepted ${type} while pairing-only`)
    if (schemaError(type, m) !== null) throw new Error(`accepted an invalid ${type}`)
    if (type === 'START_STREAM_REQUEST' && live.has(m.sessionId as string)) throw new Error('accepted a duplicate live session')
    // What was accepted re-serializes to something accepted as the same message.
    const again = judgeFrame(canonicalBytes(m), { ...state, liveSessions: live })
    if (!again.accept || JSON.stringify(again.message) !== JSON.stringify(m)) throw new Error('accepted message does not round-trip')
    return
  }
  if (CODE_OF[v.error] !== v.code) throw new Error(`code ${v.code} for ${v.error}`)
  const mustClose = v.error === 'UNSUPPORTED_MESSAGE' ? state.trust === 'pairing-only' : v.error !== 'CONFLICT'
  if (v.close !== mustClose) throw new Error(`${v.error} with close=${v.close} on ${state.trust}`)
  if (typeof v.detail !== 'string' || v.detail.length === 0) throw new Error('no detail')
  if (v.inReplyTo !== undefined && !TYPE_RE.test(v.inReplyTo)) throw new Error(`bad inReplyTo ${v.inReplyTo}`)
  if (v.error !== 'PROTOCOL_ERROR' && v.inReplyTo === undefined) throw new Error(`${v.error} without inReplyTo`)
  // The ERROR frame the channel answers with is itself a valid ERROR message.
  const cps = [...v.detail]
  const frame = {
    type: 'ERROR',
    code: v.code,
    error: v.error,
    message: cps.length <= 512 ? v.detail : cps.slice(0, 511).join('') + '…',
    ...(v.inReplyTo === undefined ? {} : { inReplyTo: v.inReplyTo }),
  }
  const invalid = schemaError('ERROR', frame)
  if (invalid !== null) throw new Error(`the ERROR answer would be invalid: ${invalid}`)
}
