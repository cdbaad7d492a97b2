// The async iterator behind ControlChannel.messages() and ListenerChannel.messages(): a
// bounded queue of accepted messages, ended by the channel's close, failed by an abort or
// an overflow.
import { AbortError } from '../transport/errors.js'
import type { ControlChannel } from './control-channel.js'
import { IteratorOverflowError } from './errors.js'
import type { Message } from './messages.js'

/** The default bound of an iterator's queue: messages accepted and not yet taken. */
export const ITERATOR_BUFFER = 10_000

/** Async iterator over a channel's accepted messages (`S`: the channel it reads). */
export class ChannelIterator<S = ControlChannel> implements AsyncIterableIterator<Message> {
  readonly #queue: Message[] = []
  readonly #waiters: { resolve: (r: IteratorResult<Message>) => void; reject: (e: Error) => void }[] = []
  #done = false
  #failure: Error | undefined
  readonly #onAbort: () => void

  constructor(
    private readonly channel: S,
    private readonly limit: number,
    private readonly signal: AbortSignal | undefined,
    private readonly detach: (self: ChannelIterator<S>) => void,
  ) {
    this.#onAbort = () => this.#fail(new AbortError(signal?.reason))
    if (signal?.aborted) this.#fail(new AbortError(signal.reason))
    else signal?.addEventListener('abort', this.#onAbort, { once: true })
  }

  push(m: Message): void {
    if (this.#done) return
    const w = this.#waiters.shift()
    if (w !== undefined) {
      w.resolve({ value: m, done: false })
      return
    }
    if (this.#queue.length >= this.limit) {
      this.#fail(new IteratorOverflowError(`more than ${this.limit} messages waiting in the iterator`))
      return
    }
    this.#queue.push(m)
  }

  end(): void {
    if (this.#done) return
    this.#done = true
    this.#cleanup()
    for (const w of this.#waiters.splice(0)) w.resolve({ value: undefined, done: true })
  }

  #fail(e: Error): void {
    if (this.#done) return
    this.#failure = e
    this.#done = true
    this.#queue.length = 0
    this.#cleanup()
    for (const w of this.#waiters.splice(0)) w.reject(e)
  }

  #cleanup(): void {
    this.signal?.removeEventListener('abort', this.#onAbort)
    this.detach(this)
  }

  get isDone(): boolean {
    return this.#done
  }

  next(): Promise<IteratorResult<Message>> {
    const m = this.#queue.shift()
    if (m !== undefined) return Promise.resolve({ value: m, done: false })
    if (this.#failure !== undefined) {
      const f = this.#failure
      this.#failure = undefined
      return Promise.reject(f)
    }
    if (this.#done) return Promise.resolve({ value: undefined, done: true })
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }))
  }

  return(): Promise<IteratorResult<Message>> {
    this.end()
    return Promise.resolve({ value: undefined, done: true })
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Message> {
    return this
  }

  get source(): S {
    return this.channel
  }
}
