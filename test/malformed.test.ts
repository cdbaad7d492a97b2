// Malformed input (SPEC.md §3, §4, §6): a corpus of payload classes sent raw to a
// monitor's ControlChannel over real loopback QUIC, the two bad-header cases through
// the native raw-bytes hook, and property-based fuzzing of judgeFrame (pure) with an
// end-to-end sample through a real connection.
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import {
  ControlChannel,
  ProtocolError,
  canonicalBytes,
  generateIdentity,
  judgeFrame,
  schemaError,
  type Endpoint,
  type ErrorName,
  type Message,
  type MessageType,
  type Trust,
  type Verdict,
} from '../src/index.js'
import { Harness, withTimeout } from './helpers.js'
import {
  B64_32,
  FP_A,
  FP_B,
  GatingRig,
  HAS_SEND_RAW,
  LISTENER_ID,
  PUBLIC_KEY,
  RawPeer,
  bytesOf,
  closeLink,
  mapLimit,
  parseFrame,
  utf8,
  validMessages,
  waitFor,
  type Link,
} from './protocol-helpers.js'

// ---------------------------------------------------------------------------
// Explicit facts from SPEC.md §5/§6 used as oracles below.

/** §6 code table. */
const CODE_OF: Readonly<Record<ErrorName, number>> = {
  PROTOCOL_ERROR: 1,
  UNAUTHORIZED: 2,
  UNSUPPORTED_MESSAGE: 3,
  CONFLICT: 4,
  INTERNAL_ERROR: 5,
}
/** §5 sender column. */
const SENDER: Readonly<Record<MessageType, 'listener' | 'monitor' | 'either'>> = {
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
const PAIRING = new Set<string>(['PAIR_REQUEST', 'PIN_PAIRING_INIT', 'PIN_SUBMIT', 'PAIR_ACCEPTED', 'PAIR_REJECTED', 'PIN_REQUIRED', 'ERROR'])
const TYPE_RE = /^[A-Z][A-Z0-9_]{0,39}$/

// ---------------------------------------------------------------------------
// The corpus. Each class: the payload, and the expected answer of a pairing-only
// monitor channel (and of a trusted one where the answer differs or matters).

interface Answer {
  readonly error: ErrorName
  readonly inReplyTo?: string
  /** Matched against the ERROR frame's human-readable message. */
  readonly detail?: RegExp
}
interface MalformedClass {
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

const CORPUS: MalformedClass[] = [
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

const CLOSES = (a: Answer, trust: Trust): boolean => a.error !== 'UNSUPPORTED_MESSAGE' || trust === 'pairing-only'

// ---------------------------------------------------------------------------

describe('malformed payloads against a monitor ControlChannel (real loopback QUIC)', () => {
  const rig = new GatingRig()
  beforeAll(async () => {
    await rig.start(4)
  })
  afterAll(async () => {
    await rig.stop()
  })

  it('the corpus has at least 30 classes and covers every strict-JSON failure reason', () => {
    expect(CORPUS.length).toBeGreaterThanOrEqual(30)
    expect(new Set(CORPUS.map((c) => c.name)).size).toBe(CORPUS.length)
    const reasons = new Set(CORPUS.flatMap((c) => /\(([A-Z_0-9]+)\\\)/.exec(c.pairingOnly.detail?.source ?? '')?.[1] ?? []))
    for (const r of ['INVALID_UTF8', 'BOM', 'SYNTAX', 'TRAILING_DATA', 'DUPLICATE_KEY', 'LONE_SURROGATE', 'TOO_DEEP', 'NUMBER_OUT_OF_RANGE', 'NOT_AN_OBJECT', 'FORBIDDEN_KEY']) {
      expect(reasons).toContain(r)
    }
  })

  it('pure: judgeFrame answers every class as the corpus says', () => {
    for (const c of CORPUS) {
      for (const [trust, answer] of [['pairing-only', c.pairingOnly], ['trusted', c.trusted]] as const) {
        if (answer === undefined) continue
        const v = judgeFrame(c.bytes, { role: 'monitor', trust, liveSessions: new Set() })
        expect(v.accept, `${c.name} (${trust})`).toBe(false)
        if (v.accept) continue
        expect({ error: v.error, code: v.code, close: v.close, inReplyTo: v.inReplyTo }, `${c.name} (${trust})`).toEqual({
          error: answer.error,
          code: CODE_OF[answer.error],
          close: CLOSES(answer, trust),
          inReplyTo: answer.inReplyTo,
        })
        if (answer.detail !== undefined) expect(v.detail, `${c.name} (${trust})`).toMatch(answer.detail)
      }
    }
  })

  it('every class: exactly one ERROR frame with the right code, close within 100 ms, no handler call', async () => {
    const cases = CORPUS.flatMap((c) => [
      { c, trust: 'pairing-only' as Trust, answer: c.pairingOnly },
      ...(c.trusted === undefined ? [] : [{ c, trust: 'trusted' as Trust, answer: c.trusted }]),
    ])
    /** One attempt on a fresh connection; throws on any wrong answer; returns ms from send to close (or -1). */
    const attempt = async (c: MalformedClass, trust: Trust, answer: Answer, slot: number): Promise<number> => {
      const link: Link = await rig.link(rig.slots[slot]!, 'L->M', trust)
      const label = `${c.name} (${trust})`
      try {
        expect(link.receiver.trust).toBe(trust)
        let closedAt = 0
        link.sender.once('close', () => {
          closedAt = performance.now()
        })
        const closes = CLOSES(answer, trust)
        const sentAt = performance.now()
        link.sender.send(c.bytes)
        let elapsed = -1
        if (closes) {
          const info = await withTimeout(link.sender.closed, 2000, `${label}: the close`)
          elapsed = closedAt - sentAt
          expect(info).toEqual({ code: CODE_OF[answer.error], reason: answer.error, byPeer: true, application: true })
          expect(await link.receiver.closed).toMatchObject({ code: CODE_OF[answer.error], byPeer: false, application: true })
        } else {
          // Trusted and not closed: a sentinel PING proves the channel is still usable.
          link.sender.send(canonicalBytes({ type: 'PING', timestamp: 77 }))
          await waitFor(() => link.senderFrames.length >= 2 || link.sender.isClosed, 2000, `${label}: the sentinel PONG`)
          expect(link.sender.isClosed).toBe(false)
          expect(parseFrame(link.senderFrames[1]!)).toEqual({ type: 'PONG', timestamp: 77 })
        }
        const errors = link.senderFrames.map(parseFrame).filter((f) => f.type === 'ERROR')
        expect(errors, label).toHaveLength(1)
        expect(errors[0]).toEqual({
          type: 'ERROR',
          code: CODE_OF[answer.error],
          error: answer.error,
          message: expect.any(String),
          ...(answer.inReplyTo === undefined ? {} : { inReplyTo: answer.inReplyTo }),
        })
        if (answer.detail !== undefined) expect(errors[0]!.message).toMatch(answer.detail)
        expect(schemaError('ERROR', errors[0])).toBeNull()
        // Rejected input never reaches the application (the sentinel PING aside).
        expect(link.delivered.filter((m) => !(m.type === 'PING' && m.timestamp === 77))).toEqual([])
        expect(link.noise).toEqual([])
        expect(link.receiverErrors).toHaveLength(1)
        const reported = link.receiverErrors[0] as ProtocolError
        expect(reported).toBeInstanceOf(ProtocolError)
        expect({ protocolCode: reported.protocolCode, errorName: reported.errorName, byPeer: reported.byPeer }).toEqual({
          protocolCode: CODE_OF[answer.error],
          errorName: answer.error,
          byPeer: false,
        })
        return elapsed
      } finally {
        await closeLink(link)
      }
    }
    const failures: string[] = []
    const closeTimes: number[] = []
    const remeasured: string[] = []
    await mapLimit(cases, 3, async ({ c, trust, answer }, slot) => {
      const label = `${c.name} (${trust})`
      try {
        let elapsed = await attempt(c, trust, answer, slot)
        if (elapsed >= 100) {
          // Wall-clock time on a shared 2-core machine (other test files run in
          // parallel): a single outlier is measured again, with every check repeated.
          remeasured.push(`${label}: ${elapsed.toFixed(1)} ms`)
          elapsed = await attempt(c, trust, answer, slot)
        }
        if (elapsed >= 0) closeTimes.push(elapsed)
        expect(elapsed, `${label}: closed ${elapsed.toFixed(1)} ms after the frame was sent`).toBeLessThan(100)
      } catch (e) {
        failures.push(`${label}: ${(e as Error).message}`)
      }
    })
    closeTimes.sort((a, b) => a - b)
    console.log(
      `malformed classes: ${CORPUS.length}, cases: ${cases.length}, close after send: median ${closeTimes[closeTimes.length >> 1]?.toFixed(1)} ms, ` +
        `max ${closeTimes.at(-1)?.toFixed(1)} ms` +
        (remeasured.length > 0 ? `; re-measured: ${remeasured.join(', ')}` : ''),
    )
    expect(failures).toEqual([])
  }, 60_000)

  it('boundaries are accepted: a 64-code-point name, a 32,768-character sdp (trusted)', async () => {
    const link = await rig.link(rig.slots[0]!, 'L->M', 'trusted')
    try {
      const pair = { ...V.PAIR_REQUEST, listenerName: '\u{1F600}'.repeat(64) }
      const offer = { type: 'WEBRTC_OFFER', sessionId: 's', sdp: 'a'.repeat(32_768) } as const
      link.sender.send(bytesOf(pair))
      link.sender.send(bytesOf(offer))
      await waitFor(() => link.delivered.length === 2, 5000, 'two deliveries')
      expect(link.delivered).toEqual([pair, offer])
      expect(link.senderFrames).toEqual([])
    } finally {
      await closeLink(link)
    }
  })
})

describe('bad frame headers through the native raw-bytes hook', () => {
  const h = new Harness()
  let monitor: Endpoint
  let fingerprint: string
  let raw: RawPeer | undefined
  const channels: ControlChannel[] = []
  beforeAll(async () => {
    const id = generateIdentity()
    fingerprint = id.fingerprint
    monitor = await h.bind(id)
    monitor.listen({ acceptUnknown: true })
    monitor.on('connection', (c) => {
      const ch = ControlChannel.accept(c)
      ch.on('error', () => undefined)
      channels.push(ch)
    })
    if (HAS_SEND_RAW) raw = new RawPeer(generateIdentity())
  })
  afterAll(async () => {
    await raw?.close()
    await h.closeAll()
  })

  for (const [name, header] of [
    ['L = 0', [0, 0, 0, 0]],
    ['L = max + 1 (65,537), no body', [0x00, 0x01, 0x00, 0x01]],
    ['L = 2^32 − 1', [0xff, 0xff, 0xff, 0xff]],
  ] as const) {
    it.skipIf(!HAS_SEND_RAW)(`${name}: closed with PROTOCOL_ERROR (1) and no ERROR frame`, async () => {
      const peer = raw!
      const before = channels.length
      const connId = await peer.connect(monitor.address.port, fingerprint)
      await waitFor(() => channels.length === before + 1, 5000, 'the monitor channel')
      const channel = channels[before]!
      let delivered = 0
      channel.on('message', () => {
        delivered++
      })
      const sentAt = performance.now()
      peer.sendRaw(connId, Buffer.from(header))
      const info = await peer.closeOf(connId, 2000)
      const elapsed = performance.now() - sentAt
      expect(info).toMatchObject({ code: 1, byPeer: true, application: true })
      expect(elapsed).toBeLessThan(100)
      expect(peer.framesOf(connId)).toEqual([]) // the stream is unusable: no ERROR frame
      expect(await withTimeout(channel.closed, 2000, 'the channel close')).toMatchObject({ code: 1, byPeer: false })
      expect(delivered).toBe(0)
      expect(channel.stats).toEqual({ accepted: 0, rejected: 0 })
    })
  }
})

// ---------------------------------------------------------------------------
// Property-based: generated valid messages, and mutations of them.

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
const anyMessage: fc.Arbitrary<Message> = fc.oneof(...(Object.values(messageArbs) as fc.Arbitrary<Message>[]))

/** A mutation of a valid message's bytes or object. */
type Mutation = (msg: Record<string, unknown>, bytes: Buffer) => Buffer
const KEYS_POOL = ['type', 'timestamp', 'sessionId', 'monitorId', 'code', 'error', 'x', '', 'constructor', 'toString', '\u00e9']
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
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

const STATES = [
  { role: 'monitor', trust: 'pairing-only' },
  { role: 'monitor', trust: 'trusted' },
  { role: 'listener', trust: 'pairing-only' },
  { role: 'listener', trust: 'trusted' },
] as const

/** Invariants every verdict satisfies, from SPEC.md §6 (throws an Error when broken). */
function checkVerdict(v: Verdict, state: (typeof STATES)[number], live: ReadonlySet<string>): void {
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

describe('property-based: generated and mutated frames through judgeFrame', () => {
  it('valid generated messages round-trip byte-identically; 100,000+ mutated frames all get a verdict', () => {
    const MUTATIONS_PER_MESSAGE = 9
    let frames = 0
    let exceptions = 0
    let roundTrips = 0
    const outcomes = new Map<string, number>()
    const live = new Set(['stream-1', 'a', '0'])
    fc.assert(
      fc.property(anyMessage, fc.array(mutation, { minLength: MUTATIONS_PER_MESSAGE, maxLength: MUTATIONS_PER_MESSAGE }), fc.nat(3), (msg, mutations, s) => {
        // The valid message: accepted by its receiving role on a trusted channel, and
        // canonicalBytes(verdict.message) are the original bytes.
        const bytes = Buffer.from(canonicalBytes(msg))
        const sender = SENDER[msg.type]
        const receiver = sender === 'listener' ? 'monitor' : sender === 'monitor' ? 'listener' : STATES[s]!.role
        const v = judgeFrame(bytes, { role: receiver, trust: 'trusted', liveSessions: new Set() })
        frames++
        if (!v.accept) throw new Error(`valid ${msg.type} rejected: ${v.detail}`)
        if (!Buffer.from(canonicalBytes(v.message)).equals(bytes)) throw new Error(`${msg.type} does not round-trip`)
        roundTrips++
        // Mutations: every one gets a verdict that satisfies the §6 invariants.
        for (const [i, mutate] of mutations.entries()) {
          const state = STATES[(s + i) % STATES.length]!
          const liveSessions = i % 2 === 0 ? live : new Set<string>()
          let mutated: Buffer
          try {
            mutated = mutate(msg as unknown as Record<string, unknown>, bytes)
          } catch {
            continue // e.g. a mutation that produced a value canonicalBytes refuses
          }
          frames++
          let verdict: Verdict
          try {
            verdict = judgeFrame(mutated, { ...state, liveSessions })
          } catch (e) {
            exceptions++
            throw new Error(`judgeFrame threw on ${mutated.toString('hex').slice(0, 200)}: ${String(e)}`)
          }
          checkVerdict(verdict, state, liveSessions)
          const key = verdict.accept ? 'accepted' : verdict.error
          outcomes.set(key, (outcomes.get(key) ?? 0) + 1)
        }
      }),
      { numRuns: 10_500, seed: 0x5eed },
    )
    console.log('property frames judged:', frames, 'round trips:', roundTrips, 'outcomes:', Object.fromEntries(outcomes))
    expect(exceptions).toBe(0)
    expect(frames).toBeGreaterThanOrEqual(100_000)
    expect(roundTrips).toBe(10_500)
    // The mutations reach every kind of verdict.
    for (const k of ['accepted', 'PROTOCOL_ERROR', 'UNAUTHORIZED', 'UNSUPPORTED_MESSAGE', 'CONFLICT']) expect(outcomes.get(k) ?? 0).toBeGreaterThan(0)
  }, 60_000)

  describe('a sample of 2,000 mutated frames through real connections', () => {
    const rig = new GatingRig()
    beforeAll(async () => {
      await rig.start(4)
    })
    afterAll(async () => {
      await rig.stop()
    })

    it('the monitor channel answers exactly as judgeFrame predicts, and nothing crashes', async () => {
      const samples = fc.sample(fc.tuple(anyMessage, mutation), { numRuns: 2_400, seed: 42 })
      const frames: Buffer[] = []
      for (const [msg, mutate] of samples) {
        try {
          const b = mutate(msg as unknown as Record<string, unknown>, Buffer.from(canonicalBytes(msg)))
          if (b.length > 0 && b.length <= 65_536) frames.push(b)
        } catch {
          // unserializable mutation: skip
        }
        if (frames.length === 2_000) break
      }
      expect(frames).toHaveLength(2_000)
      // Batches of 20 frames per connection; within a batch the frames whose verdict
      // does not close come first, so most of them are judged by the real channel; the
      // frames after the first closing one must be ignored (exactly one ERROR).
      const state = { role: 'monitor', trust: 'trusted' } as const
      const closes = (b: Buffer): boolean => {
        const v = judgeFrame(b, { ...state, liveSessions: new Set() })
        return !v.accept && v.close
      }
      const batches: Buffer[][] = []
      for (let i = 0; i < frames.length; i += 20) {
        const batch = frames.slice(i, i + 20)
        batches.push([...batch.filter((b) => !closes(b)), ...batch.filter(closes)])
      }
      const uncaught: unknown[] = []
      const onUncaught = (e: unknown): void => {
        uncaught.push(e)
      }
      process.on('uncaughtException', onUncaught)
      process.on('unhandledRejection', onUncaught)
      let judgedByChannel = 0
      const failures: string[] = []
      try {
        await mapLimit(batches, rig.slots.length, async (batch, slot) => {
          const link = await rig.link(rig.slots[slot]!, 'L->M', 'trusted')
          try {
            // Prediction: judgeFrame with the channel's session bookkeeping.
            const live = new Set<string>()
            const expectedFrames: unknown[] = []
            const expectedDelivered: unknown[] = []
            let closeCode: number | undefined
            for (const b of batch) {
              const v = judgeFrame(b, { ...state, liveSessions: live })
              judgedByChannel++
              if (v.accept) {
                expectedDelivered.push(v.message)
                if (v.message.type === 'START_STREAM_REQUEST') live.add(v.message.sessionId)
                if (v.message.type === 'END_STREAM') live.delete(v.message.sessionId)
                if (v.message.type === 'PING') expectedFrames.push({ type: 'PONG', timestamp: v.message.timestamp })
              } else {
                expectedFrames.push({
                  type: 'ERROR',
                  code: v.code,
                  error: v.error,
                  message: expect.any(String),
                  ...(v.inReplyTo === undefined ? {} : { inReplyTo: v.inReplyTo }),
                })
                if (v.close) {
                  closeCode = v.code
                  break
                }
              }
            }
            for (const b of batch) link.sender.send(b)
            if (closeCode !== undefined) {
              const info = await withTimeout(link.sender.closed, 5000, 'the close')
              expect(info).toMatchObject({ code: closeCode, byPeer: true, application: true })
            } else {
              expectedDelivered.push({ type: 'PING', timestamp: 31_337 })
              expectedFrames.push({ type: 'PONG', timestamp: 31_337 })
              link.sender.send(canonicalBytes({ type: 'PING', timestamp: 31_337 }))
              await waitFor(() => link.senderFrames.length >= expectedFrames.length || link.sender.isClosed, 5000, 'the sentinel PONG')
            }
            expect(link.senderFrames.map(parseFrame)).toEqual(expectedFrames)
            expect(JSON.parse(JSON.stringify(link.delivered))).toEqual(JSON.parse(JSON.stringify(expectedDelivered)))
          } catch (e) {
            failures.push((e as Error).message)
          } finally {
            await closeLink(link)
          }
        })
      } finally {
        process.off('uncaughtException', onUncaught)
        process.off('unhandledRejection', onUncaught)
      }
      console.log(`e2e fuzz: ${frames.length} frames sent on ${batches.length} connections, ${judgedByChannel} judged before a close`)
      expect(failures).toEqual([])
      expect(uncaught).toEqual([])
    }, 60_000)
  })
})

