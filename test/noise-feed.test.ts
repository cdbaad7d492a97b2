// The monitor's replay window (NoiseLog) and per-listener feed (NoiseFeed) in isolation,
// against a fake connection whose queue the test controls: the pacing of a replay, live
// events waiting behind it, the bound in bytes (a too-slow listener is closed with code
// 5), the fallback without a queuedBytes reading, and events aging out of the window.
import { describe, expect, it } from 'vitest'

import { ConnectionClosedError, SendBufferFullError, TypedEmitter, type ControlChannel } from '../src/index.js'
import { NoiseFeed, TOO_SLOW_REASON } from '../src/roles/noise-feed.js'
import { NoiseLog } from '../src/roles/noise-log.js'
import { waitUntil } from './helpers.js'

/** A connection whose transport queue only drains when the test says so. */
class FakeConnection extends TypedEmitter<{ drain: [] }> {
  readonly sent: string[] = []
  #queued = 0
  closing = false
  refuse = false
  /** Whether the queuedBytes reading exists (the transport may not have it). */
  readable = true
  readonly failures: unknown[] = []

  get queuedBytes(): number | undefined {
    return this.readable ? this.#queued : undefined
  }

  set queued(n: number) {
    this.#queued = n
  }

  send(payload: Buffer): number {
    if (this.closing) throw new ConnectionClosedError()
    if (this.refuse) throw new SendBufferFullError('full')
    this.sent.push(payload.toString())
    this.#queued += payload.length + 4
    return this.#queued
  }

  drain(): void {
    this.#queued = 0
    this.emitSafe('drain', [], (e) => {
      this.failures.push(e)
    })
  }
}

class FakeChannel {
  closedWith: { code: number; reason: string } | undefined
  constructor(readonly connection: FakeConnection) {}
  get isClosed(): boolean {
    return this.closedWith !== undefined
  }
  close(code: number, reason: string): Promise<void> {
    this.closedWith ??= { code, reason }
    this.connection.closing = true
    return Promise.resolve()
  }
}

/** Payloads of 96 bytes (100 with the frame header), named by number. */
function payload(i: number): Buffer {
  return Buffer.from(`event-${String(i).padStart(6, '0')}`.padEnd(96, '.'))
}

function setup(opts: {
  bound: number
  before?: number
  windowMs?: number
  maxEvents?: number
  startSeq?: number
  readable?: boolean
  queued?: number
}) {
  const log = new NoiseLog(opts.windowMs ?? 60_000, opts.maxEvents ?? 10_000)
  let i = 0
  const append = () => {
    const now = Date.now()
    return log.append(1_000 + i, payload(i++), now)
  }
  for (let k = 0; k < (opts.before ?? 0); k++) append()
  const conn = new FakeConnection()
  conn.readable = opts.readable ?? true
  conn.queued = opts.queued ?? 0
  const channel = new FakeChannel(conn)
  const feed = new NoiseFeed({
    channel: channel as unknown as ControlChannel,
    deviceId: 'l1',
    log,
    maxQueueBytes: opts.bound,
    startSeq: opts.startSeq ?? 0,
  })
  const live = () => feed.offer(append())
  const names = () => conn.sent.map((s) => Number(s.slice(6, 12)))
  return { log, conn, channel, feed, live, names }
}

describe('NoiseLog', () => {
  it('keeps at most maxEvents, oldest dropped, and numbers every event', () => {
    const log = new NoiseLog(60_000, 5)
    for (let i = 0; i < 8; i++) log.append(i, payload(i), 1000)
    expect(log.size).toBe(5)
    expect(log.firstSeq).toBe(3)
    expect(log.nextSeq).toBe(8)
    expect(log.at(2)).toBeUndefined()
    expect(log.at(3)?.timestamp).toBe(3)
    expect(log.at(7)?.timestamp).toBe(7)
    expect(log.at(8)).toBeUndefined()
  })

  it('drops events older than the window and finds the first one since a time', () => {
    const log = new NoiseLog(1000, 100)
    for (let i = 0; i < 10; i++) log.append(i, payload(i), 10_000 + i * 200) // 10.0 s … 11.8 s
    // At 11.8 s the window reaches back to 10.8 s: events 4..9 remain.
    expect(log.firstSeq).toBe(4)
    expect(log.firstSeqSince(0, 11_800)).toBe(4)
    expect(log.firstSeqSince(11_000, 11_800)).toBe(5)
    expect(log.firstSeqSince(11_001, 11_800)).toBe(6)
    expect(log.firstSeqSince(20_000, 11_800)).toBe(10) // none: nextSeq
    log.prune(13_000)
    expect(log.size).toBe(0)
    expect(log.firstSeq).toBe(10)
  })

  it('window 0 keeps nothing but still numbers events', () => {
    const log = new NoiseLog(0)
    log.append(1, payload(1), 1)
    expect(log.enabled).toBe(false)
    expect(log.size).toBe(0)
    expect(log.nextSeq).toBe(1)
    expect(log.firstSeqSince(0, 2)).toBe(1)
  })
})

describe('NoiseFeed', () => {
  it('replays the window paced by the queue (half the bound), live events wait behind it, then go straight out', () => {
    const s = setup({ bound: 1000, before: 12 })
    // Half the bound (500 bytes) = 5 frames of 100 bytes went out synchronously.
    expect(s.names()).toEqual([0, 1, 2, 3, 4])
    expect(s.feed.catchingUp).toBe(true)
    // A live event during the replay is queued behind it, not sent ahead of it.
    expect(s.live()).toBe('queued')
    expect(s.names()).toEqual([0, 1, 2, 3, 4])
    s.conn.drain()
    expect(s.names()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    s.conn.drain()
    expect(s.names()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    expect(s.feed.catchingUp).toBe(false)
    // Live: sent at once while the queue has room (up to the full bound).
    for (let k = 0; k < 6; k++) expect(s.live()).toBe('queued')
    expect(s.names().slice(-6)).toEqual([13, 14, 15, 16, 17, 18])
    expect(s.channel.closedWith).toBeUndefined()
    s.feed.dispose()
  })

  it('closes a live listener whose queue would pass the bound (code 5), and then reports it not connected', () => {
    const s = setup({ bound: 1000 })
    for (let k = 0; k < 10; k++) expect(s.live()).toBe('queued') // exactly 1000 bytes queued
    expect(s.live()).toBe('disconnected-too-slow')
    expect(s.channel.closedWith).toEqual({ code: 5, reason: TOO_SLOW_REASON })
    expect(s.feed.closedTooSlow).toBe(true)
    expect(s.names()).toHaveLength(10) // nothing sent past the bound
    expect(s.live()).toBe('not-connected')
  })

  it('a send the transport refuses (its own buffer full) is too slow as well', () => {
    const s = setup({ bound: 1000 })
    s.conn.refuse = true
    expect(s.live()).toBe('disconnected-too-slow')
    expect(s.channel.closedWith?.code).toBe(5)
  })

  it('live events piling up behind a replay that cannot go out close the listener once they pass the bound', () => {
    const s = setup({ bound: 1000, before: 8 })
    expect(s.names()).toEqual([0, 1, 2, 3, 4]) // 500 bytes queued, never drained
    // 500 queued + live backlog: the 6th live event (600 bytes) passes the bound.
    for (let k = 0; k < 5; k++) expect(s.live()).toBe('queued')
    expect(s.live()).toBe('disconnected-too-slow')
    expect(s.channel.closedWith?.code).toBe(5)
  })

  it('a live event that ages out of the window before it went out closes the listener; replayed ones may age out', () => {
    const s = setup({ bound: 100_000, before: 3, maxEvents: 5, queued: 50_000 }) // the replay cannot start
    expect(s.names()).toEqual([])
    // Five live events push the three replayed ones out of the window: that is allowed.
    for (let k = 0; k < 5; k++) expect(s.live()).toBe('queued')
    s.conn.drain()
    expect(s.names()).toEqual([3, 4, 5, 6, 7])
    expect(s.channel.closedWith).toBeUndefined()

    const t = setup({ bound: 100_000, before: 3, maxEvents: 5, queued: 50_000 })
    for (let k = 0; k < 6; k++) t.live() // the 6th drops live event 3
    t.conn.drain()
    expect(t.channel.closedWith).toEqual({ code: 5, reason: TOO_SLOW_REASON })
    expect(t.names()).toEqual([])
  })

  it('without a queuedBytes reading it uses what send() reported: live past the bound is too slow', () => {
    const s = setup({ bound: 1000, readable: false })
    for (let k = 0; k < 10; k++) expect(s.live()).toBe('queued')
    expect(s.live()).toBe('disconnected-too-slow') // send() reported 1100 bytes queued
    expect(s.channel.closedWith?.code).toBe(5)
  })

  it('without a queuedBytes reading a blocked replay probes with one frame per poll', async () => {
    const s = setup({ bound: 1000, before: 12, readable: false })
    expect(s.names()).toEqual([0, 1, 2, 3, 4])
    s.conn.queued = 0 // drained, but nothing says so
    // Every poll sends one frame, which reports the queue afresh; the replay completes.
    await waitUntil(() => !s.feed.catchingUp, 2000, 'the end of the replay')
    expect(s.names()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    s.feed.dispose()
  })

  it('starts at startSeq (nothing from before it) and stops on a closed connection', () => {
    const s = setup({ bound: 10_000, before: 6, startSeq: 4 })
    expect(s.names()).toEqual([4, 5])
    s.conn.closing = true
    expect(s.live()).toBe('not-connected')
  })
})
