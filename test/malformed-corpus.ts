// The malformed-payload corpus of malformed.test.ts (SPEC.md §3, §4, §6). Each class: the
// payload, and the expected answer of a pairing-only monitor channel (and of a trusted one
// where the answer differs or matters).
import type { ErrorName, Trust } from '../src/index.js'
import { B64_32, FP_A, FP_B, LISTENER_ID, PUBLIC_KEY, bytesOf, utf8, validMessages } from './protocol-helpers.js'

export interface Answer {
  readonly error: ErrorName
  readonly inReplyTo?: string
  /** Matched against the ERROR frame's human-readable message. */
  readonly detail?: RegExp
}
export interface MalformedClass {
  readonly name: string
  readonly bytes: Buffer
  readonly pairingOnly: Answer
  readonly trusted?: Answer
}

const V = validMessages()
const PR = (extra: string): Buffer =>
  utf8(`{"type":"PAIR_REQUEST","listenerId":"${LISTENER_ID}","listenerName":"Parent","listenerPublicKey":"${PUBLIC_KEY}","listenerCertFingerprint":"${FP_A}"${extra}}`)
const PPI = (version: string): Buffer =>
  utf8(`{"type":"PIN_PAIRING_INIT","listenerId":"${LISTENER_ID}","listenerName":"Parent","protocolVersion":${version},"listenerCertFingerprint":"${FP_A}"}`)
const withBytes = (...parts: Array<string | number[]>): Buffer =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? utf8(p) : Buffer.from(p))))
const json = (reason: string): RegExp => new RegExp(`malformed JSON \\(${reason}\\)`)
const PE = (detail?: RegExp, inReplyTo?: string): Answer => ({
  error: 'PROTOCOL_ERROR',
  ...(detail === undefined ? {} : { detail }),
  ...(inReplyTo === undefined ? {} : { inReplyTo }),
})
const without = (m: object, key: string): Record<string, unknown> => {
  const copy = { ...(m as Record<string, unknown>) }
  delete copy[key]
  return copy
}
const deep = (n: number): string => '['.repeat(n) + ']'.repeat(n)

export const CORPUS: MalformedClass[] = [
  // Encoding (§4).
  { name: 'invalid UTF-8 byte 0xff', bytes: withBytes('{"type":"PAIR_REQUEST","listenerName":"', [0xff], '"}'), pairingOnly: PE(json('INVALID_UTF8')) },
  { name: 'truncated UTF-8 sequence', bytes: withBytes('{"type":"PAIR_REQUEST","listenerName":"', [0xe2, 0x82], '"}'), pairingOnly: PE(json('INVALID_UTF8')) },
  { name: 'overlong UTF-8 (C0 AF)', bytes: withBytes('{"type":"PAIR_REQUEST","listenerName":"', [0xc0, 0xaf], '"}'), pairingOnly: PE(json('INVALID_UTF8')) },
  { name: 'overlong 3-byte UTF-8 (E0 80 AF)', bytes: withBytes('{"type":"PAIR_REQUEST","x":"', [0xe0, 0x80, 0xaf], '"}'), pairingOnly: PE(json('INVALID_UTF8')) },
  { name: 'UTF-8-encoded surrogate (ED A0 80)', bytes: withBytes('{"type":"PAIR_REQUEST","x":"', [0xed, 0xa0, 0x80], '"}'), pairingOnly: PE(json('INVALID_UTF8')) },
  { name: 'code point above U+10FFFF', bytes: withBytes('{"type":"PAIR_REQUEST","x":"', [0xf4, 0x90, 0x80, 0x80], '"}'), pairingOnly: PE(json('INVALID_UTF8')) },
  { name: 'byte-order mark', bytes: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytesOf(V.PAIR_REQUEST)]), pairingOnly: PE(json('BOM')) },
  // Not one JSON object.
  { name: 'top-level array', bytes: utf8(`[${bytesOf(V.PAIR_REQUEST).toString()}]`), pairingOnly: PE(json('NOT_AN_OBJECT')) },
  { name: 'top-level string', bytes: utf8('"PAIR_REQUEST"'), pairingOnly: PE(json('NOT_AN_OBJECT')) },
  { name: 'top-level number', bytes: utf8('42'), pairingOnly: PE(json('NOT_AN_OBJECT')) },
  { name: 'top-level null', bytes: utf8('null'), pairingOnly: PE(json('NOT_AN_OBJECT')) },
  { name: 'whitespace only', bytes: utf8(' \n\t '), pairingOnly: PE(json('SYNTAX')) },
  { name: 'two objects', bytes: utf8(`${bytesOf(V.PAIR_REQUEST).toString()}{}`), pairingOnly: PE(json('TRAILING_DATA')) },
  { name: 'trailing garbage', bytes: utf8(`${bytesOf(V.PAIR_REQUEST).toString()} x`), pairingOnly: PE(json('TRAILING_DATA')) },
  { name: 'trailing comma', bytes: PR(','), pairingOnly: PE(json('SYNTAX')) },
  { name: 'single-quoted string', bytes: utf8("{'type':'PAIR_REQUEST'}"), pairingOnly: PE(json('SYNTAX')) },
  { name: 'unescaped control character', bytes: utf8('{"type":"PAIR_REQUEST","listenerName":"a\u0001b"}'), pairingOnly: PE(json('SYNTAX')) },
  { name: 'invalid escape \\x41', bytes: utf8('{"type":"PAIR_REQUEST","listenerName":"\\x41"}'), pairingOnly: PE(json('SYNTAX')) },
  { name: 'NaN literal', bytes: PPI('NaN'), pairingOnly: PE(json('SYNTAX')) },
  { name: 'leading zero', bytes: PPI('01'), pairingOnly: PE(json('SYNTAX')) },
  { name: 'comment', bytes: utf8('{"type":"PAIR_REQUEST"/* hi */}'), pairingOnly: PE(json('SYNTAX')) },
  { name: 'non-JSON whitespace U+00A0', bytes: utf8('{\u00a0"type":"PAIR_REQUEST"}'), pairingOnly: PE(json('SYNTAX')) },
  // Nesting.
  { name: '10,000-deep nesting', bytes: utf8(`{"type":"PAIR_REQUEST","x":${deep(10_000)}}`), pairingOnly: PE(json('TOO_DEEP')) },
  { name: '33-deep nesting (limit 32)', bytes: utf8(`{"type":"PAIR_REQUEST","x":${deep(32)}}`), pairingOnly: PE(json('TOO_DEEP')) },
  // Member names.
  { name: 'duplicate member', bytes: PR(',"listenerName":"Other"'), pairingOnly: PE(json('DUPLICATE_KEY')) },
  { name: 'duplicate member spelled with an escape', bytes: PR(',"listener\\u004eame":"Other"'), pairingOnly: PE(json('DUPLICATE_KEY')) },
  { name: '__proto__ member', bytes: PR(',"__proto__":{"isAdmin":true}'), pairingOnly: PE(json('FORBIDDEN_KEY')) },
  { name: '__proto__ spelled with an escape', bytes: PR(',"\\u005f_proto__":{}'), pairingOnly: PE(json('FORBIDDEN_KEY')) },
  // Strings and numbers.
  { name: 'lone high surrogate escape', bytes: utf8('{"type":"PAIR_REQUEST","listenerName":"\\ud800"}'), pairingOnly: PE(json('LONE_SURROGATE')) },
  { name: 'lone low surrogate escape', bytes: utf8('{"type":"PAIR_REQUEST","listenerName":"x\\udc00"}'), pairingOnly: PE(json('LONE_SURROGATE')) },
  { name: 'integer 2^53+1', bytes: PPI('9007199254740993'), pairingOnly: PE(json('NUMBER_OUT_OF_RANGE')) },
  { name: 'integer -(2^53+1)', bytes: PPI('-9007199254740993'), pairingOnly: PE(json('NUMBER_OUT_OF_RANGE')) },
  { name: 'number overflowing to Infinity', bytes: PPI('1e400'), pairingOnly: PE(json('NUMBER_OUT_OF_RANGE')) },
  // The type member (rule 3).
  { name: 'missing type', bytes: utf8(`{"listenerId":"${LISTENER_ID}"}`), pairingOnly: PE(/type/) },
  { name: 'empty object', bytes: utf8('{}'), pairingOnly: PE(/type/) },
  { name: 'empty type', bytes: utf8('{"type":""}'), pairingOnly: PE(/ill-formed "type"/) },
  { name: 'lower-case type', bytes: utf8('{"type":"pair_request"}'), pairingOnly: PE(/ill-formed "type"/) },
  { name: 'type with a trailing space', bytes: utf8('{"type":"PAIR_REQUEST "}'), pairingOnly: PE(/ill-formed "type"/) },
  { name: 'type starting with a digit', bytes: utf8('{"type":"1PING"}'), pairingOnly: PE(/ill-formed "type"/) },
  { name: 'type of 41 characters', bytes: utf8(`{"type":"${'A'.repeat(41)}"}`), pairingOnly: PE(/ill-formed "type"/) },
  { name: 'type is a number', bytes: utf8('{"type":1}'), pairingOnly: PE(/non-string "type"/) },
  { name: 'type is null', bytes: utf8('{"type":null}'), pairingOnly: PE(/non-string "type"/) },
  { name: 'type is an array', bytes: utf8('{"type":["PAIR_REQUEST"]}'), pairingOnly: PE(/non-string "type"/) },
  // Rules 4–6 before member validation.
  {
    name: 'unknown type',
    bytes: utf8('{"type":"PAIR_REQUEST_V2","listenerId":"x"}'),
    pairingOnly: { error: 'UNSUPPORTED_MESSAGE', inReplyTo: 'PAIR_REQUEST_V2' },
    trusted: { error: 'UNSUPPORTED_MESSAGE', inReplyTo: 'PAIR_REQUEST_V2' },
  },
  {
    name: 'a monitor-only type from a listener, with invalid members',
    bytes: utf8('{"type":"NOISE_EVENT","peakLevel":1000}'),
    pairingOnly: { error: 'UNSUPPORTED_MESSAGE', inReplyTo: 'NOISE_EVENT' },
    trusted: { error: 'UNSUPPORTED_MESSAGE', inReplyTo: 'NOISE_EVENT' },
  },
  {
    name: 'PING with a negative timestamp',
    bytes: utf8('{"timestamp":-1,"type":"PING"}'),
    pairingOnly: { error: 'UNAUTHORIZED', inReplyTo: 'PING' },
    trusted: PE(/timestamp/, 'PING'),
  },
  {
    name: 'PING with a float timestamp',
    bytes: utf8('{"timestamp":1.5,"type":"PING"}'),
    pairingOnly: { error: 'UNAUTHORIZED', inReplyTo: 'PING' },
    trusted: PE(/integer/, 'PING'),
  },
  {
    name: 'sdp longer than 32,768',
    bytes: bytesOf({ type: 'WEBRTC_OFFER', sessionId: 's', sdp: 'a'.repeat(32_769) }),
    pairingOnly: { error: 'UNAUTHORIZED', inReplyTo: 'WEBRTC_OFFER' },
    trusted: PE(/sdp/, 'WEBRTC_OFFER'),
  },
  // Members (rule 7).
  { name: 'float where an integer belongs', bytes: PPI('1.5'), pairingOnly: PE(/protocolVersion/, 'PIN_PAIRING_INIT') },
  { name: 'wrong protocolVersion', bytes: PPI('2'), pairingOnly: PE(/protocolVersion/, 'PIN_PAIRING_INIT') },
  { name: 'protocolVersion as a string', bytes: PPI('"1"'), pairingOnly: PE(/protocolVersion/, 'PIN_PAIRING_INIT') },
  { name: 'missing member', bytes: bytesOf(without(V.PAIR_REQUEST, 'listenerName')), pairingOnly: PE(/listenerName/, 'PAIR_REQUEST') },
  { name: 'extra member', bytes: PR(',"admin":true'), pairingOnly: PE(/additional properties 'admin'/, 'PAIR_REQUEST') },
  { name: 'ill-typed member', bytes: bytesOf({ ...V.PAIR_REQUEST, listenerName: 5 }), pairingOnly: PE(/listenerName/, 'PAIR_REQUEST') },
  { name: 'empty name', bytes: bytesOf({ ...V.PAIR_REQUEST, listenerName: '' }), pairingOnly: PE(/listenerName/, 'PAIR_REQUEST') },
  {
    name: 'name of 65 code points',
    bytes: bytesOf({ ...V.PAIR_REQUEST, listenerName: '\u{1F600}'.repeat(65) }),
    pairingOnly: PE(/listenerName/, 'PAIR_REQUEST'),
  },
  { name: 'bad uuid', bytes: bytesOf({ ...V.PAIR_REQUEST, listenerId: '0f8fad5b-d9cb-469f-a165-70867728950' }), pairingOnly: PE(/listenerId/, 'PAIR_REQUEST') },
  { name: 'upper-case fingerprint', bytes: bytesOf({ ...V.PAIR_REQUEST, listenerCertFingerprint: FP_B.toUpperCase() }), pairingOnly: PE(/listenerCertFingerprint/, 'PAIR_REQUEST') },
  { name: '63-digit fingerprint', bytes: bytesOf({ ...V.PAIR_REQUEST, listenerCertFingerprint: FP_B.slice(1) }), pairingOnly: PE(/listenerCertFingerprint/, 'PAIR_REQUEST') },
  { name: 'public key that is not padded base64', bytes: bytesOf({ ...V.PAIR_REQUEST, listenerPublicKey: 'AAAAA' }), pairingOnly: PE(/listenerPublicKey/, 'PAIR_REQUEST') },
  { name: 'authTag without padding', bytes: bytesOf({ ...V.PIN_SUBMIT, authTag: B64_32.slice(0, 43) }), pairingOnly: PE(/authTag/, 'PIN_SUBMIT') },
  {
    name: 'transcript with an extra member',
    bytes: bytesOf({ ...V.PIN_SUBMIT, transcript: { ...V.PIN_SUBMIT.transcript, pin: '123456' } }),
    pairingOnly: PE(/transcript/, 'PIN_SUBMIT'),
  },
  { name: 'sessionId with a space', bytes: bytesOf({ ...V.PIN_SUBMIT, pairingSessionId: 'a b' }), pairingOnly: PE(/pairingSessionId/, 'PIN_SUBMIT') },
  { name: 'sessionId of 65 characters', bytes: bytesOf({ ...V.PIN_SUBMIT, pairingSessionId: 'a'.repeat(65) }), pairingOnly: PE(/pairingSessionId/, 'PIN_SUBMIT') },
  {
    name: 'ERROR whose code and name disagree',
    bytes: bytesOf({ type: 'ERROR', code: 2, error: 'PROTOCOL_ERROR' }),
    pairingOnly: PE(/does not match/, 'ERROR'),
  },
  { name: 'ERROR code 6', bytes: bytesOf({ type: 'ERROR', code: 6, error: 'INTERNAL_ERROR' }), pairingOnly: PE(/code/, 'ERROR') },
  { name: 'ERROR code 0 (OK)', bytes: bytesOf({ type: 'ERROR', code: 0, error: 'OK' }), pairingOnly: PE(/ERROR/, 'ERROR') },
  { name: 'ERROR with a lower-case inReplyTo', bytes: bytesOf({ type: 'ERROR', code: 1, error: 'PROTOCOL_ERROR', inReplyTo: 'ping' }), pairingOnly: PE(/inReplyTo/, 'ERROR') },
  {
    name: 'ERROR message of 513 code points',
    bytes: bytesOf({ type: 'ERROR', code: 1, error: 'PROTOCOL_ERROR', message: 'é'.repeat(513) }),
    pairingOnly: PE(/message/, 'ERROR'),
  },
  // Rules 4–6 on a pairing-only channel with well-formed messages.
  { name: 'non-pairing message while pairing-only', bytes: bytesOf({ type: 'START_STREAM_REQUEST', sessionId: 's', mediaType: 'audio' }), pairingOnly: { error: 'UNAUTHORIZED', inReplyTo: 'START_STREAM_REQUEST' } },
]

export const CLOSES = (a: Answer, trust: Trust): boolean => a.error !== 'UNSUPPORTED_MESSAGE' || trust === 'pairing-only'
