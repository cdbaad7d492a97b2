// What the Monitor's pairing window (monitor-pairing.ts) needs from the Monitor, and a
// send that never throws for a channel closing meanwhile.
import type { ControlChannel } from '../protocol/control-channel.js'
import type { Message } from '../protocol/messages.js'
import type { TrustStore } from '../store/trust-store.js'
import type { CribcallError } from '../transport/errors.js'
import type { Identity } from '../transport/identity.js'
import type { MonitorEvents } from './monitor.js'

/** What the pairing window needs from its Monitor. */
export interface PairingHost {
  readonly identity: Identity
  readonly trustStore: TrustStore
  isClosed(): boolean
  channels(): Iterable<ControlChannel>
  setAcceptUnknown(accept: boolean): void
  /** A newly paired listener's channel gets live NOISE_EVENTs from now on. */
  attachNoise(channel: ControlChannel, deviceId: string): void
  emit<K extends keyof MonitorEvents>(event: K, args: MonitorEvents[K]): void
  error(e: CribcallError): void
}

/** Sends unless the channel is closed (or closes meanwhile). */
export function safeSend(channel: ControlChannel, message: Message): void {
  try {
    if (!channel.isClosed) channel.send(message)
  } catch {
    // closed meanwhile
  }
}
