// Malformed input, property-based (SPEC.md §6): generated valid messages and mutations of
// them (frame-arbitraries.ts) through judgeFrame (pure), and an end-to-end sample through
// real loopback connections whose answers must be exactly judgeFrame's.
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { canonicalBytes, judgeFrame, type GateState, type Verdict } from '../src/index.js'
import { withTimeout } from './helpers.js'
import { GatingRig, closeLink, type Link } from './gating-rig.js'
import { STATES, anyMessage, checkVerdict, mutation } from './frame-arbitraries.js'
import { mapLimit, parseFrame, waitFor } from './protocol-helpers.js'
import { SENDER } from './spec-oracles.js'

// ---------------------------------------------------------------------------
// The end-to-end sample: mutated frames sent in batches on real connections.

type ChannelState = Omit<GateState, 'liveSessions'>

/** 2,000 mutated frames (1 to 65,536 bytes) from a fixed seed. */
function sampleMutatedFrames(): Buffer[] {
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
  return frames
}

/**
 * Batches of 20 frames per connection; within a batch the frames whose verdict does not
 * close come first, so most of them are judged by the real channel; the frames after the
 * first closing one must be ignored (exactly one ERROR).
 */
function closingFramesLast(frames: Buffer[], state: ChannelState): Buffer[][] {
  const closes = (b: Buffer): boolean => {
    const v = judgeFrame(b, { ...state, liveSessions: new Set() })
    return !v.accept && v.close
  }
  const batches: Buffer[][] = []
  for (let i = 0; i < frames.length; i += 20) {
    const batch = frames.slice(i, i + 20)
    batches.push([...batch.filter((b) => !closes(b)), ...batch.filter(closes)])
  }
  return batches
}

interface Prediction {
  readonly expectedFrames: unknown[]
  readonly expectedDelivered: unknown[]
  readonly closeCode: number | undefined
  /** Frames judged before a close. */
  readonly judged: number
}

/** Prediction: judgeFrame with the channel's session bookkeeping. */
function predictBatch(batch: readonly Buffer[], state: ChannelState): Prediction {
  const live = new Set<string>()
  const expectedFrames: unknown[] = []
  const expectedDelivered: unknown[] = []
  let closeCode: number | undefined
  let judged = 0
  for (const b of batch) {
    const v = judgeFrame(b, { ...state, liveSessions: live })
    judged++
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
  return { expectedFrames, expectedDelivered, closeCode, judged }
}

/** Sends the batch on the link; the channel's answers and deliveries are the predicted ones. */
async function sendBatchAndCheck(link: Link, batch: readonly Buffer[], p: Prediction): Promise<void> {
  const { expectedFrames, expectedDelivered, closeCode } = p
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
      const frames = sampleMutatedFrames()
      expect(frames).toHaveLength(2_000)
      const state = { role: 'monitor', trust: 'trusted' } as const
      const batches = closingFramesLast(frames, state)
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
            const prediction = predictBatch(batch, state)
            judgedByChannel += prediction.judged
            await sendBatchAndCheck(link, batch, prediction)
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
