/**
 * Reads the addon's event batches: the one place that knows their layout
 * (`native/driver/src/batch.rs` writes it, `native/src/events.rs` declares it).
 *
 * A batch is `{ frames?, events? }`: the frames packed in one Buffer (little-endian
 * u32s: `count`, then `connId, length` per frame, then the payloads back to back)
 * and the other events as a discriminated union on `kind`, each with `at` = how many
 * of the batch's frames come before it. Payloads are handed out as views of the packed
 * Buffer (no copy).
 */
import type { NativeEvent, NativeEventBatch } from '../../index.js'
import { InternalError } from './errors.js'

export type { NativeEvent, NativeEventBatch }

const COUNT_LEN = 4
const INDEX_ENTRY_LEN = 8

/** What a batch is delivered to, in the batch's order. */
export interface EventBatchVisitor {
  frame(connId: number, payload: Buffer): void
  event(event: NativeEvent): void
}

/**
 * Delivers a batch to `visitor` in order. A visitor that throws stops nothing: its
 * error goes to `failed` with what was being delivered, and the walk goes on. A batch
 * that is not well formed (a defect of the addon) throws an InternalError.
 */
export function walkEventBatch(batch: NativeEventBatch, visitor: EventBatchVisitor, failed: (error: unknown, what: string) => void): void {
  const frames = batch.frames
  const events = batch.events ?? []
  const count = frames === undefined || frames === null || frames.length === 0 ? 0 : frames.readUInt32LE(0)
  let offset = COUNT_LEN + count * INDEX_ENTRY_LEN
  if (count > 0 && offset > (frames as Buffer).length) throw new InternalError(`malformed native event batch: ${count} frames in ${(frames as Buffer).length} bytes`)
  let next = 0
  const framesUpTo = (at: number): void => {
    const buf = frames as Buffer
    for (; next < at && next < count; next++) {
      const entry = COUNT_LEN + next * INDEX_ENTRY_LEN
      const connId = buf.readUInt32LE(entry)
      const end = offset + buf.readUInt32LE(entry + 4)
      if (end > buf.length) throw new InternalError(`malformed native event batch: frame ${next} ends at ${end} of ${buf.length}`)
      const payload = buf.subarray(offset, end)
      offset = end
      try {
        visitor.frame(connId, payload)
      } catch (error) {
        failed(error, 'frame')
      }
    }
  }
  for (const event of events) {
    framesUpTo(event.at)
    try {
      visitor.event(event)
    } catch (error) {
      failed(error, event.kind)
    }
  }
  framesUpTo(count)
}
