// Helpers shared by the protocol-layer tests (gating, malformed input, ControlChannel); the
// gating rig (a monitor with slots of listener endpoints) is in gating-rig.ts.
import { NativeEndpoint, type NativeEvent, type NativeEventBatch } from '../index.js'
import { walkEventBatch } from '../src/transport/native-events.js'
import {
  canonicalBytes,
  generateIdentity,
  type CloseInfo,
  type Identity,
  type Message,
  type MessageType,
} from '../src/index.js'
import { LOOPBACK, sleep, withTimeout } from './helpers.js'
import { withTestHooks, type NativeEndpointTestHooks } from './test-addon.js'

export const MONITOR_ID = '0f8fad5b-d9cb-469f-a165-70867728950e'
export const LISTENER_ID = '7c9e6679-7425-40de-944b-e07fc1f90ae7'
export const FP_A = 'a'.repeat(64)
export const FP_B = '0123456789abcdef'.repeat(4)
/** 32 bytes, padded base64 (44 characters, one '='). */
export const B64_32 = Buffer.alloc(32, 7).toString('base64')
/** A real SubjectPublicKeyInfo (P-256), base64. */
export const PUBLIC_KEY = generateIdentity().publicKey

/** One valid instance of every message type (fresh objects on every call). */
export function validMessages(): { [T in MessageType]: Extract<Message, { type: T }> } {
  return {
    PAIR_REQUEST: {
      type: 'PAIR_REQUEST',
      listenerId: LISTENER_ID,
      listenerName: 'Parent phone',
      listenerPublicKey: PUBLIC_KEY,
      listenerCertFingerprint: FP_A,
    },
    PAIR_ACCEPTED: { type: 'PAIR_ACCEPTED', monitorId: MONITOR_ID },
    PAIR_REJECTED: { type: 'PAIR_REJECTED', reason: 'NOT_PAIRING' },
    PIN_PAIRING_INIT: {
      type: 'PIN_PAIRING_INIT',
      listenerId: LISTENER_ID,
      listenerName: 'Parent phone',
      protocolVersion: 1,
      listenerCertFingerprint: FP_A,
    },
    // monitorId: the code requires it (a decision not yet in SPEC.md §5's table).
    PIN_REQUIRED: {
      type: 'PIN_REQUIRED',
      monitorId: MONITOR_ID,
      pairingSessionId: 'pin-1',
      pakeMsgA: B64_32,
      expiresInSec: 60,
      maxAttempts: 3,
    },
    PIN_SUBMIT: {
      type: 'PIN_SUBMIT',
      pairingSessionId: 'pin-1',
      pakeMsgB: B64_32,
      transcript: {
        monitorId: MONITOR_ID,
        listenerId: LISTENER_ID,
        listenerPublicKey: PUBLIC_KEY,
        listenerCertFingerprint: FP_A,
        monitorCertFingerprint: FP_B,
        pairingSessionId: 'pin-1',
      },
      authTag: B64_32,
    },
    NOISE_EVENT: { type: 'NOISE_EVENT', monitorId: MONITOR_ID, timestamp: 1_700_000_000_000, peakLevel: 42 },
    START_STREAM_REQUEST: { type: 'START_STREAM_REQUEST', sessionId: 'stream-1', mediaType: 'audio' },
    START_STREAM_RESPONSE: { type: 'START_STREAM_RESPONSE', sessionId: 'stream-1', accepted: true },
    END_STREAM: { type: 'END_STREAM', sessionId: 'stream-1' },
    PIN_STREAM: { type: 'PIN_STREAM', sessionId: 'stream-1' },
    WEBRTC_OFFER: { type: 'WEBRTC_OFFER', sessionId: 'stream-1', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n' },
    WEBRTC_ANSWER: { type: 'WEBRTC_ANSWER', sessionId: 'stream-1', sdp: 'v=0\r\n' },
    WEBRTC_ICE: {
      type: 'WEBRTC_ICE',
      sessionId: 'stream-1',
      candidate: { candidate: 'candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host', sdpMid: '0', sdpMLineIndex: 0 },
    },
    PING: { type: 'PING', timestamp: 123 },
    PONG: { type: 'PONG', timestamp: 456 },
    ERROR: { type: 'ERROR', code: 4, error: 'CONFLICT', message: 'already streaming', inReplyTo: 'START_STREAM_REQUEST' },
  }
}

export function bytesOf(value: unknown): Buffer {
  return Buffer.from(canonicalBytes(value))
}

export function utf8(text: string): Buffer {
  return Buffer.from(text, 'utf8')
}

/** Parses a frame this library sent (canonical JSON) for assertions. */
export function parseFrame(payload: Buffer): Record<string, unknown> {
  return JSON.parse(payload.toString('utf8')) as Record<string, unknown>
}

export function isErrorFrame(payload: Buffer): boolean {
  try {
    return parseFrame(payload).type === 'ERROR'
  } catch {
    return false
  }
}

/** Runs `worker` over `items` with at most `limit` in flight. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, worker: (item: T, slot: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length)
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async (_, slot) => {
      for (;;) {
        const i = next++
        if (i >= items.length) return
        results[i] = await worker(items[i]!, slot)
      }
    }),
  )
  return results
}

// ---------------------------------------------------------------------------
// A raw native endpoint: test hooks (_sendRaw, _injectPanic) the Endpoint class hides.

export interface RawClose {
  code: number
  reason: string
  byPeer: boolean
  application: boolean
  errorCode?: string
}

/** The endpoint with the test build's hooks (test-addon.ts fails at import without them). */
type RawNative = NativeEndpoint & NativeEndpointTestHooks

/**
 * A NativeEndpoint driven directly: used as a peer that can write raw bytes (bad frame
 * headers) or vanish (its IO thread panics and never sends another packet).
 */
export class RawPeer {
  readonly #ep: RawNative
  readonly frames = new Map<number, Buffer[]>()
  readonly closes = new Map<number, RawClose>()
  readonly connections: number[] = []
  readonly errors: NativeEvent[] = []
  /** Errors thrown while recording events (a defect of this helper). */
  readonly failures: unknown[] = []
  readonly #pending = new Map<number, { resolve: (id: number) => void; reject: (e: Error) => void }>()
  readonly #closeWaiters = new Map<number, Array<(c: RawClose) => void>>()
  #closed: Promise<void> | undefined

  constructor(identity: Identity, options: { idleTimeoutMs?: number; maxFramePayload?: number } = {}) {
    this.#ep = withTestHooks(new NativeEndpoint(
      { host: LOOPBACK, port: 0, certPem: identity.certPem, keyPem: identity.keyPem, ...options },
      (batch: NativeEventBatch) =>
        walkEventBatch(
          batch,
          {
            frame: (id, payload) => {
              const list = this.frames.get(id) ?? []
              list.push(Buffer.from(payload))
              this.frames.set(id, list)
            },
            event: (e) => this.#dispatch(e),
          },
          (error) => this.failures.push(error),
        ),
    ))
  }

  get port(): number {
    return this.#ep.localAddress().port
  }

  listen(acceptUnknown: boolean): void {
    this.#ep.listen(acceptUnknown)
  }

  connect(port: number, serverFingerprint: string, ms = 5000): Promise<number> {
    const id = this.#ep.connect(LOOPBACK, port, serverFingerprint)
    return withTimeout(
      new Promise<number>((resolve, reject) => this.#pending.set(id, { resolve, reject })),
      ms,
      'a raw connect',
    )
  }

  send(connId: number, payload: Uint8Array): number {
    return this.#ep.send(connId, payload)
  }

  sendRaw(connId: number, bytes: Uint8Array): number {
    return this.#ep._sendRaw(connId, bytes)
  }

  injectPanic(): void {
    this.#ep._injectPanic()
  }

  closeConnection(connId: number, code: number, reason: string): void {
    this.#ep.closeConnection(connId, code, reason)
  }

  framesOf(connId: number): Buffer[] {
    return this.frames.get(connId) ?? []
  }

  closeOf(connId: number, ms = 5000): Promise<RawClose> {
    const done = this.closes.get(connId)
    if (done !== undefined) return Promise.resolve(done)
    return withTimeout(
      new Promise<RawClose>((resolve) => {
        const list = this.#closeWaiters.get(connId) ?? []
        list.push(resolve)
        this.#closeWaiters.set(connId, list)
      }),
      ms,
      `raw close of connection ${connId}`,
    )
  }

  close(): Promise<void> {
    this.#closed ??= this.#ep.close().catch(() => undefined)
    return this.#closed
  }

  #dispatch(e: NativeEvent): void {
    switch (e.kind) {
      case 'connected':
        this.#pending.get(e.connId)?.resolve(e.connId)
        this.#pending.delete(e.connId)
        return
      case 'connection':
        this.connections.push(e.connId)
        return
      case 'connectFailed':
        this.#pending.get(e.connId)?.reject(new Error(`connect failed: ${e.errorCode} ${e.message}`))
        this.#pending.delete(e.connId)
        return
      case 'close': {
        const info: RawClose = {
          code: e.code,
          reason: e.reason,
          byPeer: e.byPeer,
          application: e.application,
          ...(e.errorCode === undefined ? {} : { errorCode: e.errorCode }),
        }
        this.closes.set(e.connId, info)
        for (const w of this.#closeWaiters.get(e.connId) ?? []) w(info)
        this.#closeWaiters.delete(e.connId)
        return
      }
      case 'error':
        this.errors.push(e)
        return
      default:
        return
    }
  }
}

export async function waitFor(predicate: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(2)
  }
}

export type { CloseInfo }
