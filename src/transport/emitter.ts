import { EventEmitter } from 'node:events'

/** Event name → listener argument tuple. */
export type EventMap = { [event: string]: unknown[] }

/** A listener may be synchronous or async; a returned promise's rejection is caught. */
export type Listener<Args extends unknown[]> = (...args: Args) => unknown

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  )
}

/**
 * A node:events `EventEmitter` whose events are typed, so `events.on()`, `events.once()`
 * (with an AbortSignal) and everything else of Node's work on it. The library emits
 * through {@link TypedEmitter.emitSafe}, which never throws: a listener that throws
 * synchronously or returns a rejected promise is reported to the failure callback the
 * subclass passes, exactly once, and the remaining listeners still run.
 */
export class TypedEmitter<Events extends EventMap> extends EventEmitter {
  // Registration goes through these, so subclasses hear of new listeners after they
  // are in place (node:events' 'newListener' fires before).
  override addListener<K extends keyof Events & string>(event: K, listener: Listener<Events[K]>): this {
    super.addListener(event, listener as (...args: any[]) => void)
    this.listenerAdded(event)
    return this
  }

  override on<K extends keyof Events & string>(event: K, listener: Listener<Events[K]>): this {
    return this.addListener(event, listener)
  }

  override once<K extends keyof Events & string>(event: K, listener: Listener<Events[K]>): this {
    // node:events registers a once-listener through this.on: listenerAdded runs there.
    return super.once(event, listener as (...args: any[]) => void)
  }

  override prependListener<K extends keyof Events & string>(event: K, listener: Listener<Events[K]>): this {
    super.prependListener(event, listener as (...args: any[]) => void)
    this.listenerAdded(event)
    return this
  }

  override prependOnceListener<K extends keyof Events & string>(event: K, listener: Listener<Events[K]>): this {
    // ... and a prepended one through this.prependListener.
    return super.prependOnceListener(event, listener as (...args: any[]) => void)
  }

  override off<K extends keyof Events & string>(event: K, listener: Listener<Events[K]>): this {
    return super.off(event, listener as (...args: any[]) => void)
  }

  override removeListener<K extends keyof Events & string>(event: K, listener: Listener<Events[K]>): this {
    return super.removeListener(event, listener as (...args: any[]) => void)
  }

  /** Called after a listener was registered; subclasses may override. */
  protected listenerAdded(_event: keyof Events): void {}

  /**
   * Calls every listener of `event` in registration order (a listener added or removed
   * meanwhile does not change this emit). Never throws: failures (sync throw or
   * rejected returned promise) go to `onFailure`. Returns false when there was no
   * listener.
   */
  protected emitSafe<K extends keyof Events & string>(
    event: K,
    args: Events[K],
    onFailure: (error: unknown) => void,
  ): boolean {
    // rawListeners keeps once-wrappers, which remove themselves when called.
    const list = this.rawListeners(event) as Array<(...a: unknown[]) => unknown>
    if (list.length === 0) return false
    for (const fn of list) {
      try {
        const result = fn.apply(this, args)
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
}
