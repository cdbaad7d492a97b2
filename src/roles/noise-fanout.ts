// The monitor's NOISE_EVENT fan-out: strictly increasing timestamps, the replay window,
// one NoiseFeed per trusted listener channel, and the per-listener broadcast report.
import { canonicalBytes } from '../protocol/canonical.js'
import type { ControlChannel } from '../protocol/control-channel.js'
import { InvalidMessageError } from '../protocol/errors.js'
import { schemaError, type NoiseEventMessage } from '../protocol/messages.js'
import { InvalidArgumentError } from '../transport/errors.js'
import { NoiseFeed, type NoiseOutcome } from './noise-feed.js'
import { MAX_REPLAY_EVENTS, NoiseLog } from './noise-log.js'

export type { NoiseOutcome } from './noise-feed.js'

/** Default replay window: events of the last 60 s are replayed to a returning listener. */
export const DEFAULT_REPLAY_WINDOW_MS = 60_000
/** Default bound of a listener channel's send queue: 1 MiB. */
export const DEFAULT_MAX_LISTENER_QUEUE_BYTES = 1024 * 1024

/** What `Monitor.broadcastNoise` did. */
export interface NoiseBroadcastReport {
  /** The event's timestamp as sent (strictly greater than the previous event's). */
  readonly timestamp: number
  /** How many paired listeners it was queued for (on a live channel). */
  readonly delivered: number
  /**
   * One entry per paired listener: `queued` on its live channel (behind the replay, if
   * one is running); `disconnected-too-slow` when its queue would have passed the bound
   * and its channel was closed; `not-connected` without a live channel — it gets the
   * event by replay if it comes back within the replay window.
   */
  readonly listeners: ReadonlyArray<{ readonly deviceId: string; readonly outcome: NoiseOutcome }>
}

export interface NoiseFanoutOptions {
  readonly replayWindowMs?: number
  readonly maxListenerQueueBytes?: number
}

/** Throws InvalidArgumentError for an unusable replayWindowMs or maxListenerQueueBytes. */
export function checkNoiseOptions(options: NoiseFanoutOptions): void {
  const w = options.replayWindowMs
  if (w !== undefined && (!Number.isSafeInteger(w) || w < 0)) {
    throw new InvalidArgumentError('replayWindowMs must be an integer ≥ 0 (0 disables the replay window)')
  }
  const q = options.maxListenerQueueBytes
  if (q !== undefined && (!Number.isSafeInteger(q) || q <= 0)) {
    throw new InvalidArgumentError('maxListenerQueueBytes must be a positive integer')
  }
}

const RANK: Record<NoiseOutcome, number> = { 'not-connected': 0, 'disconnected-too-slow': 1, queued: 2 }

export class NoiseFanout {
  readonly #log: NoiseLog
  readonly #maxQueueBytes: number
  readonly #feeds = new Map<ControlChannel, NoiseFeed>()
  #lastTimestamp = -1
  #lastBroadcastAt = 0

  constructor(options: NoiseFanoutOptions = {}) {
    checkNoiseOptions(options)
    this.#log = new NoiseLog(options.replayWindowMs ?? DEFAULT_REPLAY_WINDOW_MS, MAX_REPLAY_EVENTS)
    this.#maxQueueBytes = options.maxListenerQueueBytes ?? DEFAULT_MAX_LISTENER_QUEUE_BYTES
  }

  get replayWindowMs(): number {
    return this.#log.windowMs
  }

  get maxListenerQueueBytes(): number {
    return this.#maxQueueBytes
  }

  /**
   * Starts feeding a trusted listener channel. With `replaySince`, the events of the
   * window broadcast at or after that time (the listener's pairedAt) are sent first, in
   * order; live events follow them. Without it (a channel that was just paired) only
   * live events.
   */
  attach(channel: ControlChannel, deviceId: string, replaySince?: number): void {
    if (this.#feeds.has(channel) || channel.isClosed) return
    const startSeq = replaySince === undefined ? this.#log.nextSeq : this.#log.firstSeqSince(replaySince, Date.now())
    this.#feeds.set(channel, new NoiseFeed({ channel, deviceId, log: this.#log, maxQueueBytes: this.#maxQueueBytes, startSeq }))
  }

  detach(channel: ControlChannel): void {
    this.#feeds.get(channel)?.dispose()
    this.#feeds.delete(channel)
  }

  /**
   * Validates, logs and sends one NOISE_EVENT; `pairedListeners` are the device ids of
   * the paired listeners (the report has one entry for each, plus any other fed channel).
   */
  broadcast(
    monitorId: string,
    event: { peakLevel: number; timestamp?: number },
    pairedListeners: Iterable<string>,
  ): NoiseBroadcastReport {
    if (event === null || typeof event !== 'object') throw new InvalidArgumentError('broadcastNoise needs { peakLevel, timestamp? }')
    const requested = event.timestamp ?? Date.now()
    const timestamp = Math.max(requested, this.#lastTimestamp + 1)
    const message: NoiseEventMessage = { type: 'NOISE_EVENT', monitorId, timestamp, peakLevel: event.peakLevel }
    const invalid = schemaError('NOISE_EVENT', message)
    if (invalid !== null || !Number.isSafeInteger(requested) || requested < 0) {
      throw new InvalidMessageError(`invalid NOISE_EVENT: ${invalid ?? 'timestamp must be an integer ≥ 0'}`)
    }
    this.#lastTimestamp = timestamp
    this.#lastBroadcastAt = Math.max(Date.now(), this.#lastBroadcastAt)
    const entry = this.#log.append(timestamp, Buffer.from(canonicalBytes(message)), this.#lastBroadcastAt)

    const outcomes = new Map<string, NoiseOutcome>()
    for (const id of pairedListeners) outcomes.set(id, 'not-connected')
    for (const [channel, feed] of [...this.#feeds]) {
      const outcome = feed.offer(entry)
      if (!feed.active) this.#feeds.delete(channel)
      const prev = outcomes.get(feed.deviceId)
      // A channel of a device no longer paired (revoked, closing) is only reported if it got the event.
      if (prev === undefined && outcome === 'not-connected') continue
      if (prev === undefined || RANK[outcome] > RANK[prev]) outcomes.set(feed.deviceId, outcome)
    }
    const listeners = [...outcomes].map(([deviceId, outcome]) => ({ deviceId, outcome }))
    return { timestamp, delivered: listeners.filter((l) => l.outcome === 'queued').length, listeners }
  }

  /** Stops every feed and forgets the window (the monitor stopped). */
  close(): void {
    for (const feed of this.#feeds.values()) feed.dispose()
    this.#feeds.clear()
    this.#log.clear()
  }
}
