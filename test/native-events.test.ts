// The event batch layout, read by src/transport/native-events.ts: the same vector as
// native/driver/src/batch.rs's `frames_and_events_keep_their_order` (written there by
// `pack`), so the two sides of the seam are held to one layout.
import { describe, expect, it } from 'vitest'
import type { NativeEvent, NativeEventBatch } from '../index.js'
import { InternalError } from '../src/index.js'
import { walkEventBatch } from '../src/transport/native-events.js'

function packed(frames: Array<[number, Buffer]>): Buffer {
  const index = Buffer.alloc(4 + frames.length * 8)
  index.writeUInt32LE(frames.length, 0)
  frames.forEach(([id, p], i) => {
    index.writeUInt32LE(id, 4 + i * 8)
    index.writeUInt32LE(p.length, 8 + i * 8)
  })
  return Buffer.concat([index, ...frames.map(([, p]) => p)])
}

type Seen = Array<string>

function walk(batch: NativeEventBatch): { seen: Seen; failures: Array<[unknown, string]> } {
  const seen: Seen = []
  const failures: Array<[unknown, string]> = []
  walkEventBatch(
    batch,
    {
      frame: (id, payload) => seen.push(`frame ${id} ${payload.toString('latin1')}`),
      event: (e) => seen.push(`${e.kind}${'connId' in e ? ` ${e.connId}` : ''}`),
    },
    (error, what) => failures.push([error, what]),
  )
  return { seen, failures }
}

describe('native event batches', () => {
  it('interleaves frames and events in the order the IO thread produced them', () => {
    const frames = packed([
      [7, Buffer.from('a')],
      [9, Buffer.alloc(0)],
      [7, Buffer.from('hello')],
      [1, Buffer.alloc(300, 0xff)],
    ])
    // Byte for byte what the Rust test asserts `pack` writes.
    expect(frames.subarray(0, 12)).toEqual(Buffer.from([4, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0]))
    expect(frames.length).toBe(4 + 4 * 8 + 1 + 5 + 300)
    const events: NativeEvent[] = [
      { kind: 'drain', at: 1, connId: 7 },
      { kind: 'drain', at: 3, connId: 9 },
      { kind: 'closed', at: 4 },
    ]
    const { seen, failures } = walk({ frames, events })
    expect(seen).toEqual(['frame 7 a', 'drain 7', 'frame 9 ', 'frame 7 hello', 'drain 9', `frame 1 ${'\xff'.repeat(300)}`, 'closed'])
    expect(failures).toEqual([])
  })

  it('hands out payloads as views of the packed buffer (no copy)', () => {
    const frames = packed([
      [2, Buffer.from('xy')],
      [3, Buffer.from('z')],
    ])
    const got: Buffer[] = []
    walkEventBatch({ frames }, { frame: (_id, p) => got.push(p), event: () => undefined }, () => undefined)
    expect(got.map((b) => b.toString())).toEqual(['xy', 'z'])
    expect(got.every((b) => b.buffer === frames.buffer)).toBe(true)
  })

  it('a batch with only events, or with nothing, is fine', () => {
    expect(walk({ events: [{ kind: 'closed', at: 0 }] }).seen).toEqual(['closed'])
    expect(walk({}).seen).toEqual([])
  })

  it('a throwing visitor is reported with what it was given, and the walk goes on', () => {
    const frames = packed([
      [1, Buffer.from('a')],
      [1, Buffer.from('b')],
    ])
    const seen: string[] = []
    const failures: string[] = []
    walkEventBatch(
      { frames, events: [{ kind: 'drain', at: 1, connId: 1 }] },
      {
        frame: (_id, p) => {
          seen.push(p.toString())
          if (p.toString() === 'a') throw new Error('boom')
        },
        event: () => {
          throw new Error('bang')
        },
      },
      (error, what) => failures.push(`${what}: ${(error as Error).message}`),
    )
    expect(seen).toEqual(['a', 'b'])
    expect(failures).toEqual(['frame: boom', 'drain: bang'])
  })

  it('a malformed packing (a defect of the addon) throws an InternalError', () => {
    const truncated = packed([[1, Buffer.from('abc')]]).subarray(0, 14)
    expect(() => walk({ frames: truncated })).toThrow(InternalError)
    const shortIndex = Buffer.from([2, 0, 0, 0, 1, 0, 0, 0])
    expect(() => walk({ frames: shortIndex })).toThrow(InternalError)
  })
})
