// Malformed input (SPEC.md §3, §4, §6): a corpus of payload classes (malformed-corpus.ts)
// sent raw to a monitor's ControlChannel over real loopback QUIC, and the bad-header cases
// through the native raw-bytes hook. Property-based fuzzing of judgeFrame is in
// malformed-property.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import {
  ControlChannel,
  ProtocolError,
  canonicalBytes,
  generateIdentity,
  judgeFrame,
  schemaError,
  type Endpoint,
  type Trust,
} from '../src/index.js'
import { Harness, withTimeout } from './helpers.js'
import { RawPeer, bytesOf, mapLimit, parseFrame, validMessages, waitFor } from './protocol-helpers.js'
import { GatingRig, closeLink, type Link } from './gating-rig.js'
import { CLOSES, CORPUS, type Answer, type MalformedClass } from './malformed-corpus.js'
import { CODE_OF } from './spec-oracles.js'

const V = validMessages()

/** One attempt on a fresh connection; throws on any wrong answer; returns ms from send to close (or -1). */
async function attemptClass(rig: GatingRig, c: MalformedClass, trust: Trust, answer: Answer, slot: number): Promise<number> {
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
    const failures: string[] = []
    const closeTimes: number[] = []
    const remeasured: string[] = []
    await mapLimit(cases, 3, async ({ c, trust, answer }, slot) => {
      const label = `${c.name} (${trust})`
      try {
        let elapsed = await attemptClass(rig, c, trust, answer, slot)
        if (elapsed >= 100) {
          // Wall-clock time on a shared 2-core machine (other test files run in
          // parallel): a single outlier is measured again, with every check repeated.
          remeasured.push(`${label}: ${elapsed.toFixed(1)} ms`)
          elapsed = await attemptClass(rig, c, trust, answer, slot)
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
    raw = new RawPeer(generateIdentity())
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
    it(`${name}: closed with PROTOCOL_ERROR (1) and no ERROR frame`, async () => {
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
