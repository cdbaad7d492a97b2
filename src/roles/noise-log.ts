// The monitor's replay window: the NOISE_EVENTs it broadcast recently, kept in memory
// (bounded by age and count) so that a paired listener that comes back can be caught up.

/** Most events the replay window keeps; the oldest are dropped first. */
export const MAX_REPLAY_EVENTS = 10_000

/** One broadcast NOISE_EVENT as it went out. */
export interface LoggedNoise {
  /** Position in the monitor's sequence of broadcasts (0, 1, 2, …). */
  readonly seq: number
  /** The event's `timestamp` (strictly increasing from one event to the next). */
  readonly timestamp: number
  /** The monitor's clock when it was broadcast (compared with the age limit and `pairedAt`). */
  readonly broadcastAt: number
  /** The canonical JSON payload, exactly the bytes of the original broadcast. */
  readonly bytes: Buffer
}

/**
 * The events of the last `windowMs` milliseconds, at most `maxEvents` of them, in
 * broadcast order. Every appended event gets the next sequence number, also when the
 * window is disabled (`windowMs` 0: nothing is kept).
 */
export class NoiseLog {
  readonly windowMs: number
  readonly maxEvents: number
  #entries: LoggedNoise[] = []
  /** Index in #entries of the oldest retained event (dropped ones are compacted lazily). */
  #head = 0
  #nextSeq = 0

  constructor(windowMs: number, maxEvents: number = MAX_REPLAY_EVENTS) {
    this.windowMs = windowMs
    this.maxEvents = maxEvents
  }

  get enabled(): boolean {
    return this.windowMs > 0 && this.maxEvents > 0
  }

  /** The sequence number the next appended event will get. */
  get nextSeq(): number {
    return this.#nextSeq
  }

  /** Sequence number of the oldest retained event (= nextSeq when none is retained). */
  get firstSeq(): number {
    return this.#entries[this.#head]?.seq ?? this.#nextSeq
  }

  /** How many events are retained. */
  get size(): number {
    return this.#entries.length - this.#head
  }

  /** Records one broadcast event; returns its entry (retained only when the window is enabled). */
  append(timestamp: number, bytes: Buffer, broadcastAt: number): LoggedNoise {
    const entry: LoggedNoise = { seq: this.#nextSeq++, timestamp, broadcastAt, bytes }
    if (!this.enabled) return entry
    this.#entries.push(entry)
    this.prune(broadcastAt)
    return entry
  }

  /** Drops the events older than the window (at `now`) and those beyond the count limit. */
  prune(now: number): void {
    const oldest = now - this.windowMs
    while (this.size > 0) {
      const e = this.#entries[this.#head]!
      if (this.size <= this.maxEvents && e.broadcastAt >= oldest) break
      this.#head++
    }
    // Compact once the dropped prefix is as long as what is kept.
    if (this.#head > 0 && this.#head >= this.size) {
      this.#entries = this.#entries.slice(this.#head)
      this.#head = 0
    }
  }

  /** The retained event with this sequence number, if any. */
  at(seq: number): LoggedNoise | undefined {
    const i = this.#head + (seq - this.firstSeq)
    if (seq < this.firstSeq || i >= this.#entries.length) return undefined
    return this.#entries[i]
  }

  /**
   * Sequence number of the first retained event broadcast at or after `since`
   * (nextSeq when there is none). Prunes first, at `now`.
   */
  firstSeqSince(since: number, now: number): number {
    this.prune(now)
    // Broadcast times never decrease along the log: binary search.
    let lo = this.#head
    let hi = this.#entries.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.#entries[mid]!.broadcastAt < since) lo = mid + 1
      else hi = mid
    }
    return this.#entries[lo]?.seq ?? this.#nextSeq
  }

  clear(): void {
    this.#entries = []
    this.#head = 0
  }
}
