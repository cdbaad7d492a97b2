// The documented channel for user handler failures of the role objects: a HandlerError
// on the object's 'error' event, or a process warning when nobody listens for 'error' or
// the failing handler is itself an 'error' handler. Never swallowed, never thrown.
import { TypedEmitter, type EventMap } from '../transport/emitter.js'
import { HandlerError, type CribcallError } from '../transport/errors.js'

/** process.emitWarning that never throws (it can, under --throw-deprecation-like flags). */
export function warn(error: Error): void {
  try {
    process.emitWarning(error)
  } catch {
    // nothing sensible is left to do
  }
}

export type ErrorEvents = EventMap & { error: [error: CribcallError] }

export class ReportingEmitter<Events extends ErrorEvents> extends TypedEmitter<Events> {
  /**
   * Emits `event`; every handler that throws or rejects is reported once as a
   * HandlerError (see {@link ReportingEmitter.reportError}). Returns false when nobody listened.
   */
  protected emitReported<K extends keyof Events & string>(event: K, args: Events[K]): boolean {
    if (event === 'error') {
      const had = this.listenerCount('error') > 0
      this.reportError(args[0] as CribcallError)
      return had
    }
    return this.emitSafe(event, args, (failure) => this.reportError(new HandlerError(event, failure)))
  }

  /**
   * Emits 'error'. A failing 'error' handler becomes a process warning. With no 'error'
   * listener a HandlerError becomes a process warning; other errors (peer ERROR frames,
   * rejected peer input) are dropped, as on ControlChannel.
   */
  protected reportError(error: CribcallError): void {
    if (this.listenerCount('error') === 0) {
      if (error instanceof HandlerError) warn(error)
      return
    }
    this.emitSafe('error', [error] as unknown as Events['error'], (failure) => warn(new HandlerError('error', failure)))
  }
}
