// One trusted listener channel's NOISE_EVENT feed on the monitor: first the replay of
// the window (paced by the channel's send queue), then live events, in broadcast order,
// with the channel's queue bounded in bytes. A listener past the bound is closed with
// INTERNAL_ERROR 'too slow: send queue full'; it reconnects and is caught up by the replay.
import type { ControlChannel } from '../protocol/control-channel.js'
import { ErrorCode } from '../protocol/messages.js'
import type { Connection } from '../transport/connection.js'
import type { TypedEmitter } from '../transport/emitter.js'
import { CribcallError } from '../transport/errors.js'
import type { LoggedNoise, NoiseLog } from './noise-log.js'

/** What a broadcast did for one paired listener. */
export type NoiseOutcome = 'queued' | 'disconnected-too-slow' | 'not-connected'

/** The reason a too-slow listener's channel is closed with (code 5, INTERNAL_ERROR). */
export const TOO_SLOW_REASON = 'too slow: send queue full'

/** Length header the transport adds to every frame. */
const FRAME_HEADER = 4
/** While replaying, the queue is filled to this fraction of the bound (headroom for live events). */
const REPLAY_FILL = 0.5
/** How often a blocked replay looks at the queue again when no 'drain' event comes. */
const DRAIN_POLL_MS = 2

type SendResult = 'sent' | 'full' | 'closed'

/** Bytes the transport holds for `conn` (accepted by send, not yet handed to QUIC), when it says. */
function transportQueued(conn: Connection): number | undefined {
  const q = (conn as unknown as { queuedBytes?: unknown }).queuedBytes
  return typeof q === 'number' && Number.isFinite(q) ? q : undefined
}

function frameBytes(e: LoggedNoise): number {
  return e.bytes.length + FRAME_HEADER
}

export class NoiseFeed {
  readonly channel: ControlChannel
  readonly deviceId: string
  readonly #log: NoiseLog
  readonly #maxQueueBytes: number
  /** Next sequence number this channel has not been sent yet. */
  #cursor: number
  /** Events from this sequence number on were broadcast while this feed existed (live). */
  readonly #liveFrom: number
  /** Bytes of live events waiting behind the replay (counted against the bound). */
  #pendingLive = 0
  /** Without a queuedBytes reading: what the last send() reported as queued. */
  #lastQueued = 0
  #timer: NodeJS.Timeout | undefined
  #probe = false
  #done = false
  #closedTooSlow = false
  readonly #onDrain = (): void => this.#resume()

  /**
   * Starts the feed at `startSeq`: the events from there to the end of the log are
   * replayed first (synchronously, as far as the queue allows).
   */
  constructor(init: {
    channel: ControlChannel
    deviceId: string
    log: NoiseLog
    maxQueueBytes: number
    startSeq: number
  }) {
    this.channel = init.channel
    this.deviceId = init.deviceId
    this.#log = init.log
    this.#maxQueueBytes = init.maxQueueBytes
    this.#liveFrom = init.log.nextSeq
    this.#cursor = Math.min(init.startSeq, init.log.nextSeq)
    this.#pump()
  }

  /** True while the feed still delivers to its channel. */
  get active(): boolean {
    return !this.#done && !this.channel.isClosed
  }

  /** True once the feed closed its channel as too slow. */
  get closedTooSlow(): boolean {
    return this.#closedTooSlow
  }

  /** True while replayed events are still being sent (live events wait behind them). */
  get catchingUp(): boolean {
    return this.#cursor < this.#log.nextSeq
  }

  /** Offers a just-logged broadcast event. */
  offer(entry: LoggedNoise): NoiseOutcome {
    if (!this.active) return 'not-connected'
    if (this.#cursor < entry.seq) {
      // Replaying: the event waits in the log behind the replay; its bytes count.
      this.#pendingLive += frameBytes(entry)
      if (this.#pendingLive + this.#queued() > this.#maxQueueBytes) return this.#tooSlow()
      if (this.#timer === undefined) this.#pump()
      if (this.active) return 'queued'
      return this.#closedTooSlow ? 'disconnected-too-slow' : 'not-connected'
    }
    const len = frameBytes(entry)
    const q = transportQueued(this.channel.connection)
    if (q !== undefined && q + len > this.#maxQueueBytes) return this.#tooSlow()
    const r = this.#send(entry.bytes)
    if (r === 'closed') return 'not-connected'
    if (r === 'full' || (q === undefined && this.#lastQueued > this.#maxQueueBytes)) return this.#tooSlow()
    this.#cursor = entry.seq + 1
    return 'queued'
  }

  /** Stops the feed (its channel closed, or the monitor stopped). */
  dispose(): void {
    if (this.#done) return
    this.#done = true
    this.#stopWaiting()
  }

  #tooSlow(): NoiseOutcome {
    this.dispose()
    this.#closedTooSlow = true
    this.channel.close(ErrorCode.INTERNAL_ERROR, TOO_SLOW_REASON).catch(() => undefined)
    return 'disconnected-too-slow'
  }

  #queued(): number {
    return transportQueued(this.channel.connection) ?? this.#lastQueued
  }

  #send(bytes: Buffer): SendResult {
    try {
      const n: unknown = this.channel.connection.send(bytes)
      if (typeof n === 'number') this.#lastQueued = n
      return 'sent'
    } catch (e) {
      if (e instanceof CribcallError && e.code === 'ERR_SEND_BUFFER_FULL') return 'full'
      return 'closed'
    }
  }

  /** May the replay send a frame of `len` bytes now? */
  #roomFor(len: number): boolean {
    const fill = this.#maxQueueBytes * REPLAY_FILL
    const q = transportQueued(this.channel.connection)
    if (q !== undefined) return q === 0 || q + len <= fill
    // No reading: trust the last send's report, and after a wait send one frame to get a fresh one.
    if (this.#lastQueued === 0 || this.#lastQueued + len <= fill) return true
    const probe = this.#probe
    this.#probe = false
    return probe
  }

  /** Sends the replay from the cursor on, as far as the queue allows. */
  #pump(): void {
    this.#stopWaiting()
    this.#log.prune(Date.now())
    while (this.active && this.#cursor < this.#log.nextSeq) {
      if (this.#cursor < this.#log.firstSeq) {
        // Dropped from the window before it went out. Replayed events may age out; a
        // live one lost this way means the listener fell too far behind.
        if (this.#log.firstSeq > this.#liveFrom) {
          this.#tooSlow()
          return
        }
        this.#cursor = this.#log.firstSeq
        continue
      }
      const e = this.#log.at(this.#cursor)
      if (e === undefined) break
      if (!this.#roomFor(frameBytes(e))) {
        this.#waitForDrain()
        return
      }
      const r = this.#send(e.bytes)
      if (r === 'closed') return this.dispose()
      if (r === 'full') {
        this.#waitForDrain()
        return
      }
      if (e.seq >= this.#liveFrom) this.#pendingLive -= frameBytes(e)
      this.#cursor++
    }
    if (!this.catchingUp) this.#pendingLive = 0
  }

  #waitForDrain(): void {
    if (this.#timer !== undefined || this.#done) return
    ;(this.channel.connection as unknown as TypedEmitter<{ drain: [] }>).on('drain', this.#onDrain)
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#probe = true
      this.#resume()
    }, DRAIN_POLL_MS)
    this.#timer.unref()
  }

  #resume(): void {
    if (this.#done) return
    this.#pump()
  }

  #stopWaiting(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
    ;(this.channel.connection as unknown as TypedEmitter<{ drain: [] }>).off('drain', this.#onDrain)
  }
}
