// SPEC.md §6 gating, table-driven: every message type (plus an unknown one) × sending
// role × trust of the receiving channel, over real loopback QUIC and as a pure
// judgeFrame table. The expectations are written out below by hand from SPEC.md §5/§6;
// nothing here derives them from MESSAGE_RULES or judgeFrame.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import {
  MESSAGE_TYPES,
  canonicalBytes,
  judgeFrame,
  type ErrorName,
  type Message,
  type MessageType,
  type Trust,
} from '../src/index.js'
import { withTimeout } from './helpers.js'
import { GatingRig, closeLink, type Direction, type Link } from './gating-rig.js'
import { bytesOf, mapLimit, parseFrame, utf8, validMessages, waitFor } from './protocol-helpers.js'

// ---------------------------------------------------------------------------
// The expectation table.

type Outcome =
  | { readonly accept: true }
  | { readonly accept: false; readonly error: ErrorName; readonly code: number; readonly close: boolean }

const OK: Outcome = { accept: true }
/** Rule 4/5 on a pairing-only channel. */
const UNSUP_CLOSE: Outcome = { accept: false, error: 'UNSUPPORTED_MESSAGE', code: 3, close: true }
/** Rule 4/5 on a trusted channel. */
const UNSUP: Outcome = { accept: false, error: 'UNSUPPORTED_MESSAGE', code: 3, close: false }
/** Rule 6. */
const UNAUTH: Outcome = { accept: false, error: 'UNAUTHORIZED', code: 2, close: true }
/** Rules 2, 3, 7. */
const PROTO: Outcome = { accept: false, error: 'PROTOCOL_ERROR', code: 1, close: true }
/** Rule 8. */
const CONFLICT: Outcome = { accept: false, error: 'CONFLICT', code: 4, close: false }

const UNKNOWN = 'UNKNOWN_THING'
type Row = MessageType | typeof UNKNOWN

/** Columns: the receiver's situation. */
const COLUMNS = [
  { dir: 'L->M', trust: 'pairing-only' },
  { dir: 'L->M', trust: 'trusted' },
  { dir: 'M->L', trust: 'pairing-only' },
  { dir: 'M->L', trust: 'trusted' },
] as const satisfies ReadonlyArray<{ dir: Direction; trust: Trust }>

// prettier-ignore
const TABLE: Readonly<Record<Row, readonly [Outcome, Outcome, Outcome, Outcome]>> = {
  //                       listener → monitor        monitor → listener
  //                       pairing-only  trusted     pairing-only  trusted
  PAIR_REQUEST:          [ OK,          OK,         UNSUP_CLOSE,  UNSUP ],
  PAIR_ACCEPTED:         [ UNSUP_CLOSE, UNSUP,      OK,           OK    ],
  PAIR_REJECTED:         [ UNSUP_CLOSE, UNSUP,      OK,           OK    ],
  PIN_PAIRING_INIT:      [ OK,          OK,         UNSUP_CLOSE,  UNSUP ],
  PIN_REQUIRED:          [ UNSUP_CLOSE, UNSUP,      OK,           OK    ],
  PIN_SUBMIT:            [ OK,          OK,         UNSUP_CLOSE,  UNSUP ],
  NOISE_EVENT:           [ UNSUP_CLOSE, UNSUP,      UNAUTH,       OK    ],
  START_STREAM_REQUEST:  [ UNAUTH,      OK,         UNSUP_CLOSE,  UNSUP ],
  START_STREAM_RESPONSE: [ UNSUP_CLOSE, UNSUP,      UNAUTH,       OK    ],
  END_STREAM:            [ UNAUTH,      OK,         UNAUTH,       OK    ],
  PIN_STREAM:            [ UNAUTH,      OK,         UNSUP_CLOSE,  UNSUP ],
  WEBRTC_OFFER:          [ UNAUTH,      OK,         UNAUTH,       OK    ],
  WEBRTC_ANSWER:         [ UNAUTH,      OK,         UNAUTH,       OK    ],
  WEBRTC_ICE:            [ UNAUTH,      OK,         UNAUTH,       OK    ],
  PING:                  [ UNAUTH,      OK,         UNAUTH,       OK    ],
  PONG:                  [ UNAUTH,      OK,         UNAUTH,       OK    ],
  ERROR:                 [ OK,          OK,         OK,           OK    ],
  [UNKNOWN]:             [ UNSUP_CLOSE, UNSUP,      UNSUP_CLOSE,  UNSUP ],
}

/**
 * The same message with an extra member (invalid by §5): rules 4–6 come before rule 7,
 * so only what would otherwise be accepted becomes PROTOCOL_ERROR.
 */
function withInvalidMembers(valid: Outcome): Outcome {
  return valid.accept ? PROTO : valid
}

// ---------------------------------------------------------------------------
// Scenarios: a receiver situation and a sequence of frames with their expected outcome.

type Step =
  | { readonly kind: 'send'; readonly bytes: Buffer; readonly expect: Outcome; readonly inReplyTo?: string }
  | { readonly kind: 'receiverSends'; readonly message: Message }

interface Scenario {
  readonly name: string
  readonly dir: Direction
  readonly trust: Trust
  readonly steps: readonly Step[]
}

function sample(row: Row): Record<string, unknown> {
  if (row === UNKNOWN) return { type: UNKNOWN, sessionId: 'stream-1' }
  return validMessages()[row] as unknown as Record<string, unknown>
}

const scenarios: Scenario[] = []
for (const row of Object.keys(TABLE) as Row[]) {
  COLUMNS.forEach((col, i) => {
    const valid = TABLE[row][i]!
    scenarios.push({
      name: `${row} ${col.dir} ${col.trust}`,
      dir: col.dir,
      trust: col.trust,
      steps: [{ kind: 'send', bytes: bytesOf(sample(row)), expect: valid, inReplyTo: row }],
    })
    scenarios.push({
      name: `${row} with an extra member ${col.dir} ${col.trust}`,
      dir: col.dir,
      trust: col.trust,
      steps: [{ kind: 'send', bytes: bytesOf({ ...sample(row), bogus: 1 }), expect: withInvalidMembers(valid), inReplyTo: row }],
    })
  })
}
const TABLE_SCENARIOS = scenarios.length

// Malformed payloads (rules 2, 3, 7) and rule-order checks.
const malformedRows: Array<[string, Direction, Trust, Buffer, Outcome, string | undefined]> = [
  ['not JSON', 'L->M', 'pairing-only', utf8('hello'), PROTO, undefined],
  ['not JSON', 'M->L', 'trusted', utf8('{"type":"PING",'), PROTO, undefined],
  ['an array', 'M->L', 'trusted', utf8('[{"type":"PING","timestamp":1}]'), PROTO, undefined],
  ['no type', 'L->M', 'trusted', utf8('{"timestamp":1}'), PROTO, undefined],
  ['lower-case type', 'M->L', 'pairing-only', utf8('{"type":"pair_accepted","monitorId":"0f8fad5b-d9cb-469f-a165-70867728950e"}'), PROTO, undefined],
  ['numeric type', 'L->M', 'pairing-only', utf8('{"type":7}'), PROTO, undefined],
  ['duplicate type', 'L->M', 'trusted', utf8('{"type":"PING","type":"PING","timestamp":1}'), PROTO, undefined],
  ['PING with a string timestamp', 'L->M', 'trusted', utf8('{"timestamp":"1","type":"PING"}'), PROTO, 'PING'],
  ['PAIR_ACCEPTED with a bad uuid', 'M->L', 'pairing-only', utf8('{"monitorId":"nope","type":"PAIR_ACCEPTED"}'), PROTO, 'PAIR_ACCEPTED'],
  ['PAIR_REQUEST missing a member', 'L->M', 'pairing-only', bytesOf({ type: 'PAIR_REQUEST', listenerName: 'x' }), PROTO, 'PAIR_REQUEST'],
  // Rule 6 before rule 7: an invalid PING on a pairing-only channel is UNAUTHORIZED.
  ['invalid PING on pairing-only', 'L->M', 'pairing-only', utf8('{"timestamp":-1,"type":"PING"}'), UNAUTH, 'PING'],
  // Rule 5 before rule 7: an invalid NOISE_EVENT from a listener is UNSUPPORTED_MESSAGE.
  ['invalid NOISE_EVENT from a listener', 'L->M', 'trusted', utf8('{"type":"NOISE_EVENT"}'), UNSUP, 'NOISE_EVENT'],
  // Rule 4 before rule 7: an unknown type is unsupported whatever its members.
  ['unknown type with garbage members', 'M->L', 'trusted', utf8('{"type":"FUTURE_THING","x":[1,{"y":null}]}'), UNSUP, 'FUTURE_THING'],
]
for (const [what, dir, trust, bytes, outcome, inReplyTo] of malformedRows) {
  scenarios.push({
    name: `malformed: ${what} ${dir} ${trust}`,
    dir,
    trust,
    steps: [{ kind: 'send', bytes, expect: outcome, ...(inReplyTo === undefined ? {} : { inReplyTo }) }],
  })
}

// Stream-session rows (rule 8 and END_STREAM idempotence).
const SSR = (sessionId: string): Buffer => bytesOf({ type: 'START_STREAM_REQUEST', sessionId, mediaType: 'audio_video' })
const END = (sessionId: string): Buffer => bytesOf({ type: 'END_STREAM', sessionId })
const send = (bytes: Buffer, outcome: Outcome, inReplyTo?: string): Step => ({
  kind: 'send',
  bytes,
  expect: outcome,
  ...(inReplyTo === undefined ? {} : { inReplyTo }),
})
const sessionRows: Array<[string, Direction, readonly Step[]]> = [
  ['duplicate live START_STREAM_REQUEST is CONFLICT', 'L->M', [send(SSR('s1'), OK), send(SSR('s1'), CONFLICT, 'START_STREAM_REQUEST')]],
  [
    'two live sessions, both duplicated',
    'L->M',
    [send(SSR('s1'), OK), send(SSR('s2'), OK), send(SSR('s2'), CONFLICT, 'START_STREAM_REQUEST'), send(SSR('s1'), CONFLICT, 'START_STREAM_REQUEST')],
  ],
  ['END_STREAM frees the session id', 'L->M', [send(SSR('s1'), OK), send(END('s1'), OK), send(SSR('s1'), OK)]],
  ['END_STREAM twice is accepted both times (L->M)', 'L->M', [send(SSR('s1'), OK), send(END('s1'), OK), send(END('s1'), OK)]],
  ['END_STREAM twice is accepted both times (M->L)', 'M->L', [send(END('s1'), OK), send(END('s1'), OK)]],
  ['END_STREAM of an unknown session is accepted', 'L->M', [send(END('never'), OK), send(END('never'), OK)]],
  [
    "the monitor's END_STREAM frees the session id",
    'L->M',
    [send(SSR('s1'), OK), { kind: 'receiverSends', message: { type: 'END_STREAM', sessionId: 's1' } }, send(SSR('s1'), OK)],
  ],
  [
    'START_STREAM_RESPONSE accepted:false frees the session id',
    'L->M',
    [
      send(SSR('s1'), OK),
      { kind: 'receiverSends', message: { type: 'START_STREAM_RESPONSE', sessionId: 's1', accepted: false, reason: 'busy' } },
      send(SSR('s1'), OK),
    ],
  ],
  [
    'START_STREAM_RESPONSE accepted:true keeps the session live',
    'L->M',
    [
      send(SSR('s1'), OK),
      { kind: 'receiverSends', message: { type: 'START_STREAM_RESPONSE', sessionId: 's1', accepted: true } },
      send(SSR('s1'), CONFLICT, 'START_STREAM_REQUEST'),
    ],
  ],
  [
    'CONFLICT does not end the session; a later malformed frame still closes',
    'L->M',
    [send(SSR('s1'), OK), send(SSR('s1'), CONFLICT, 'START_STREAM_REQUEST'), send(utf8('{"type":"END_STREAM"}'), PROTO, 'END_STREAM')],
  ],
]
for (const [what, dir, steps] of sessionRows) scenarios.push({ name: `sessions: ${what}`, dir, trust: 'trusted', steps })

// ---------------------------------------------------------------------------
// Expected wire results of a scenario (computed from the steps, not from judgeFrame).

interface Expected {
  delivered: unknown[]
  /** Every frame the sender receives, in order (ERROR frames with any message text). */
  frames: unknown[]
  /** Length of `frames` after each step. */
  framesAfter: number[]
  deliveredAfter: number[]
  close: Extract<Outcome, { accept: false }> | undefined
  rejected: number
}

function expectedOf(sc: Scenario): Expected {
  const e: Expected = { delivered: [], frames: [], framesAfter: [], deliveredAfter: [], close: undefined, rejected: 0 }
  for (const step of sc.steps) {
    if (e.close !== undefined) throw new Error(`${sc.name}: a step after a closing step`)
    if (step.kind === 'receiverSends') {
      e.frames.push(JSON.parse(JSON.stringify(step.message)))
    } else if (step.expect.accept) {
      const msg = JSON.parse(step.bytes.toString('utf8')) as Record<string, unknown>
      e.delivered.push(msg)
      if (msg.type === 'PING') e.frames.push({ type: 'PONG', timestamp: msg.timestamp })
    } else {
      e.rejected++
      e.frames.push({
        type: 'ERROR',
        code: step.expect.code,
        error: step.expect.error,
        message: expect.any(String),
        ...(step.inReplyTo === undefined ? {} : { inReplyTo: step.inReplyTo }),
      })
      if (step.expect.close) e.close = step.expect
    }
    e.framesAfter.push(e.frames.length)
    e.deliveredAfter.push(e.delivered.length)
  }
  return e
}

const SENTINEL = { type: 'PING', timestamp: 987_654_321 } as const

async function runScenario(rig: GatingRig, slot: number, sc: Scenario): Promise<void> {
  const link: Link = await rig.link(rig.slots[slot]!, sc.dir, sc.trust)
  try {
    expect(link.receiver.role).toBe(sc.dir === 'L->M' ? 'monitor' : 'listener')
    expect(link.receiver.trust).toBe(sc.trust)
    const exp = expectedOf(sc)
    const sentAt: number[] = []
    for (const [i, step] of sc.steps.entries()) {
      if (step.kind === 'receiverSends') link.receiver.send(step.message)
      else {
        sentAt.push(performance.now())
        link.sender.send(step.bytes)
      }
      // Each step's effects are complete before the next step starts.
      const frames = exp.framesAfter[i]!
      const delivered = exp.deliveredAfter[i]!
      await waitFor(
        () => (link.senderFrames.length >= frames && link.delivered.length >= delivered) || link.sender.isClosed,
        5000,
        `${sc.name}: step ${i} (${frames} frames at the sender, ${delivered} messages delivered)`,
      )
    }
    if (exp.close !== undefined) {
      const info = await withTimeout(link.sender.closed, 5000, `${sc.name}: the close`)
      expect(info).toEqual({ code: exp.close.code, reason: exp.close.error, byPeer: true, application: true })
      const own = await withTimeout(link.receiver.closed, 5000, `${sc.name}: the receiver's close`)
      expect(own).toMatchObject({ code: exp.close.code, reason: exp.close.error, byPeer: false, application: true })
    } else if (sc.trust === 'trusted') {
      // A sentinel PING: once its PONG is back, everything the earlier frames caused
      // has arrived (one ordered stream), and the connection demonstrably stayed open.
      exp.delivered.push({ ...SENTINEL })
      exp.frames.push({ type: 'PONG', timestamp: SENTINEL.timestamp })
      link.sender.send(canonicalBytes(SENTINEL))
      await waitFor(() => link.senderFrames.length >= exp.frames.length, 5000, `${sc.name}: the sentinel PONG`)
    } else {
      // Pairing-only and nothing rejected: PING is not allowed, so give stray frames time.
      await new Promise((r) => setTimeout(r, 100))
    }
    expect(link.senderFrames.map(parseFrame)).toEqual(exp.frames)
    expect(link.delivered).toEqual(exp.delivered)
    expect(link.noise).toEqual(exp.delivered.filter((m) => (m as { type: string }).type === 'NOISE_EVENT'))
    expect(link.receiver.stats).toEqual({ accepted: exp.delivered.length, rejected: exp.rejected })
    if (exp.close === undefined) {
      expect(link.sender.isClosed).toBe(false)
      expect(link.receiver.isClosed).toBe(false)
    }
  } finally {
    await closeLink(link)
  }
}

// ---------------------------------------------------------------------------

describe('gating table (SPEC.md §6)', () => {
  it('the table covers all 17 message types and an unknown one, in every column', () => {
    expect(MESSAGE_TYPES).toHaveLength(17)
    expect(Object.keys(TABLE).sort()).toEqual([...MESSAGE_TYPES, UNKNOWN].sort())
    for (const row of Object.values(TABLE)) expect(row).toHaveLength(4)
    // Every type accepted somewhere: the samples are valid messages.
    for (const t of MESSAGE_TYPES) expect(TABLE[t].some((o) => o.accept)).toBe(true)
    expect(TABLE_SCENARIOS).toBe(18 * 4 * 2)
  })

  it('pure: judgeFrame gives the table’s verdict for every case', () => {
    let n = 0
    const failures: string[] = []
    for (const sc of scenarios) {
      const live = new Set<string>()
      const track = (m: Record<string, unknown>): void => {
        if (m.type === 'START_STREAM_REQUEST') live.add(m.sessionId as string)
        if (m.type === 'END_STREAM') live.delete(m.sessionId as string)
        if (m.type === 'START_STREAM_RESPONSE' && m.accepted === false) live.delete(m.sessionId as string)
      }
      for (const [i, step] of sc.steps.entries()) {
        if (step.kind === 'receiverSends') {
          track(step.message as unknown as Record<string, unknown>)
          continue
        }
        n++
        const v = judgeFrame(step.bytes, { role: sc.dir === 'L->M' ? 'monitor' : 'listener', trust: sc.trust, liveSessions: live })
        const got = v.accept
          ? { accept: true, message: v.message }
          : { accept: false, error: v.error, code: v.code, close: v.close, inReplyTo: v.inReplyTo }
        const want = step.expect.accept
          ? { accept: true, message: JSON.parse(step.bytes.toString('utf8')) as unknown }
          : { ...step.expect, inReplyTo: step.inReplyTo }
        try {
          expect(got).toEqual(want)
          if (!v.accept) expect(v.detail.length).toBeGreaterThan(0)
        } catch (e) {
          failures.push(`${sc.name} step ${i}: ${(e as Error).message}`)
        }
        if (v.accept) track(v.message as unknown as Record<string, unknown>)
      }
    }
    expect(failures).toEqual([])
    console.log('gating cases (pure judgeFrame):', n)
    expect(n).toBeGreaterThanOrEqual(144 + malformedRows.length)
  })

  describe('over real loopback QUIC', () => {
    const rig = new GatingRig()
    beforeAll(async () => {
      await rig.start(6)
    })
    afterAll(async () => {
      await rig.stop()
    })

    it('every case: deliveries, ERROR frames, close codes', async () => {
      const started = performance.now()
      const failures: string[] = []
      await mapLimit(scenarios, rig.slots.length, async (sc, slot) => {
        try {
          await runScenario(rig, slot, sc)
        } catch (e) {
          failures.push(`${sc.name}: ${(e as Error).message}`)
        }
      })
      const frames = scenarios.reduce((n, sc) => n + sc.steps.filter((s) => s.kind === 'send').length, 0)
      console.log('gating cases:', scenarios.length, `(${frames} frames judged, ${Math.round(performance.now() - started)} ms)`)
      expect(failures).toEqual([])
      expect(scenarios.length).toBeGreaterThanOrEqual(144 + malformedRows.length + sessionRows.length)
    }, 60_000)
  })
})
