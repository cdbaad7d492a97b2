import { InvalidArgumentError } from './errors.js'

/** Event name → listener argument tuple. */
export type EventMap = { [event: string]: unknown[] }

/** A listener may be synchronous or async; a returned promise's rejection is caught. */
export type Listener<Args extends unknown[]> = (...args: Args) => unknown

interface Registration {
  readonly fn: Listener<never[]>
  readonly once: boolean
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  )
}

/**
 * A small typed event emitter. Unlike node:events it never throws from emit: a
 * listener that throws synchronously or returns a rejected promise is reported to the
 * failure callback the subclass passes to {@link TypedEmitter.emitSafe}.
 */
export class TypedEmitter<Events extends EventMap> {
  // Lists are replaced, never mutated, so an emit in progress is not disturbed by
  // listeners added or removed meanwhile.
  #listeners = new Map<keyof Events, readonly Registration[]>()

  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    return this.#add(event, listener, false)
  }

  once<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    return this.#add(event, listener, true)
  }

  /** Removes the most recently added registration of `listener` for `event`. */
  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    const list = this.#listeners.get(event)
    if (list === undefined) return this
    for (let i = list.length - 1; i >= 0; i--) {
      if (list[i]!.fn === (listener as unknown)) {
        this.#set(event, [...list.slice(0, i), ...list.slice(i + 1)])
        break
      }
    }
    return this
  }

  removeAllListeners(event?: keyof Events): this {
    if (event === undefined) this.#listeners.clear()
    else this.#listeners.delete(event)
    return this
  }

  listenerCount(event: keyof Events): number {
    return this.#listeners.get(event)?.length ?? 0
  }

  /** Called after a listener was registered; subclasses may override. */
  protected listenerAdded(_event: keyof Events): void {}

  /**
   * Calls every listener of `event` in registration order. Never throws: failures
   * (sync throw or rejected returned promise) go to `onFailure`. Returns false when
   * there was no listener.
   */
  protected emitSafe<K extends keyof Events>(
    event: K,
    args: Events[K],
    onFailure: (error: unknown) => void,
  ): boolean {
    const list = this.#listeners.get(event)
    if (list === undefined || list.length === 0) return false
    for (const reg of list) {
      if (reg.once) this.#removeRegistration(event, reg)
      try {
        const result = (reg.fn as Listener<Events[K]>)(...args)
        if (isThenable(result)) {
          result.then(undefined, (error: unknown) => {
            try {
              onFailure(error)
            } catch {
              // onFailure must not throw; nothing sensible is left to do.
            }
          })
        }
      } catch (error) {
        try {
          onFailure(error)
        } catch {
          // see above
        }
      }
    }
    return true
  }

  #add<K extends keyof Events>(event: K, listener: Listener<Events[K]>, once: boolean): this {
    if (typeof listener !== 'function') {
      throw new InvalidArgumentError(`listener for '${String(event)}' must be a function`)
    }
    const list = this.#listeners.get(event) ?? []
    this.#set(event, [...list, { fn: listener as unknown as Listener<never[]>, once }])
    this.listenerAdded(event)
    return this
  }

  #removeRegistration(event: keyof Events, reg: Registration): void {
    const list = this.#listeners.get(event)
    if (list === undefined) return
    const i = list.indexOf(reg)
    if (i >= 0) this.#set(event, [...list.slice(0, i), ...list.slice(i + 1)])
  }

  #set(event: keyof Events, list: readonly Registration[]): void {
    if (list.length === 0) this.#listeners.delete(event)
    else this.#listeners.set(event, list)
  }
}
