// The public shapes of a ControlChannel: its events and the options of its constructor,
// connect() and ping(). control-channel.ts re-exports them.
import type { CloseInfo } from '../transport/connection.js'
import type { CribcallError } from '../transport/errors.js'
import type { ChannelRole, Trust } from './gating.js'
import type { Message, NoiseEventMessage } from './messages.js'

export type ControlChannelEvents = {
  /** Every message the channel accepted (rejected ones never get here). */
  message: [message: Message]
  /** NOISE_EVENT messages (also delivered as 'message'). */
  noise: [event: NoiseEventMessage]
  /** The channel's trust changed (pairing upgrades it in place). */
  trust: [trust: Trust]
  /** The connection's native send queue emptied after a refused send (see Connection 'drain'). */
  drain: []
  /** Emitted once when the underlying connection closed. */
  close: [info: CloseInfo]
  /** Handler failures, rejected peer input, peer ERROR frames. */
  error: [error: CribcallError]
}

export interface ControlChannelOptions {
  /** This side's role. */
  readonly role: ChannelRole
  /** Initial trust. Monitor side: 'trusted' only for a known (paired) peer. */
  readonly trust: Trust
  /** Nesting limit of incoming JSON (default 32). */
  readonly maxDepth?: number
  /** Send a PING this often (trusted channels); 0/absent = off. */
  readonly pingIntervalMs?: number
  /** Messages the async iterator may hold before it fails (default 10,000). */
  readonly iteratorBuffer?: number
}

export interface ConnectChannelOptions {
  readonly host: string
  readonly port: number
  /** The monitor's pinned certificate fingerprint. */
  readonly serverFingerprint: string
  /** 'trusted' when this monitor is paired (default), 'pairing-only' to pair. */
  readonly trust?: Trust
  readonly signal?: AbortSignal
  readonly timeoutMs?: number
  readonly pingIntervalMs?: number
  readonly maxDepth?: number
}

export interface PingOptions {
  readonly signal?: AbortSignal
  /** Give up after this many ms (default 10,000). */
  readonly timeoutMs?: number
}
