// `cribcall-agent monitor --web [HOST:]PORT`: a local web console for the running
// monitor. Loaded by the monitor command with a dynamic import, only when --web is
// given: library users and the other commands never load it.
import QRCode from 'qrcode'
import { isStoredDeviceId } from '../../base/formats.js'
import type { Approvals } from '../approvals.js'
import type { Monitor, NoiseBroadcastReport, PairingRequestInfo, PinSessionInfo } from '../../index.js'
import { ConsoleAuth, isLoopbackAddress, newToken } from './auth.js'
import { HttpError, loadAssets } from './http.js'
import { ConsoleServer, type ConsoleActions } from './server.js'
import { ConsoleState, type PairMode } from './state.js'

export interface WebConsoleOptions {
  readonly host: string
  readonly port: number
  readonly monitor: Monitor
  readonly approvals: Approvals
  readonly name: string
  readonly pairMode: PairMode
  readonly pairMinutes: number
  /** The monitor command's own `pair [minutes]` (prints `qr` and `pairing-opened`). */
  readonly openPairing: (minutes: number) => Promise<void>
  /** Called after the console answered a request (the terminal may show its prompt). */
  readonly answered?: (info: PairingRequestInfo, approved: boolean) => void
}

export interface WebConsole {
  /** The URL with the token: print it once. */
  readonly url: string
  readonly host: string
  readonly port: number
  /** Bound to a loopback address (else the caller warns). */
  readonly loopback: boolean
  /** The monitor's `approve` hook was called: show the request until `answer` settles. */
  requested(info: PairingRequestInfo, answer: Promise<boolean>): void
  /** The monitor showed a PIN (its `onPin`). */
  pinShown(pin: string, session: Omit<PinSessionInfo, 'pin'>): void
  /** A NOISE_EVENT was broadcast (the report of `broadcastNoise`). */
  noiseSent(peakLevel: number, report: NoiseBroadcastReport): void
  close(): Promise<void>
}

/** Longest pairing window the console opens (a day). */
const MAX_MINUTES = 24 * 60

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}

function actionsFor(o: WebConsoleOptions, state: ConsoleState): ConsoleActions {
  const { monitor, approvals } = o
  let qrCache: { version: number; svg: string } | undefined
  return {
    async openPairing(body) {
      const minutes = body.minutes ?? o.pairMinutes
      if (typeof minutes !== 'number' || !Number.isFinite(minutes) || minutes <= 0 || minutes > MAX_MINUTES) {
        throw new HttpError(400, `minutes must be a number above 0 and at most ${MAX_MINUTES}`)
      }
      await o.openPairing(minutes)
    },
    closePairing() {
      if (!monitor.isPairingOpen) throw new HttpError(409, 'the pairing window is not open')
      monitor.closePairing()
    },
    answer(listenerId, body, approve) {
      const id = listenerId.toLowerCase()
      const waiting = approvals.pending.find((r) => r.listenerId.toLowerCase() === id)
      if (waiting === undefined) throw new HttpError(404, `no pairing request from ${listenerId} is waiting for an answer`)
      // Listener IDs are chosen by the listener: the fingerprint names the device the
      // operator saw, so a click never answers another device's request.
      if (typeof body.fingerprint !== 'string') throw new HttpError(400, 'the body must name the request by its fingerprint: {"fingerprint": "<64 hex digits>"}')
      if (body.fingerprint.toLowerCase() !== waiting.fingerprint) {
        throw new HttpError(409, `the oldest request of ${listenerId} comes from another device (fingerprint ${waiting.fingerprint.slice(0, 16)}…); answer that one first`)
      }
      const r = approvals.answer(id, approve)
      if (!r.ok) throw new HttpError(404, r.message)
      o.answered?.(waiting, approve)
    },
    async revoke(deviceId) {
      const id = deviceId.toLowerCase()
      const entry = isStoredDeviceId(id) ? monitor.trustStore.get(id) : undefined
      if (entry === undefined || entry.role !== 'listener') throw new HttpError(404, `no paired listener ${deviceId}`)
      if ((await monitor.revoke(id)) === undefined) throw new HttpError(404, `no paired listener ${deviceId}`)
    },
    async qrSvg() {
      if (!state.qrAvailable) return undefined
      if (qrCache?.version !== state.qrVersion) {
        const svg = await QRCode.toString(monitor.pairingQrPayload(), { type: 'svg', errorCorrectionLevel: 'L', margin: 4, color: { dark: '#000000', light: '#ffffff' } })
        qrCache = { version: state.qrVersion, svg }
      }
      return qrCache.svg
    },
  }
}

/** Starts the console; rejects (e.g. EADDRINUSE) without leaving anything running. */
export async function startWebConsole(o: WebConsoleOptions): Promise<WebConsole> {
  const assets = await loadAssets()
  const state = new ConsoleState({ monitor: o.monitor, approvals: o.approvals, name: o.name, pairMode: o.pairMode, pairMinutes: o.pairMinutes })
  const auth = new ConsoleAuth(newToken())
  const server = new ConsoleServer(auth, state, actionsFor(o, state), assets)
  let bound
  try {
    bound = await server.listen(o.host, o.port)
  } catch (e) {
    state.close()
    await server.close().catch(() => undefined)
    throw e
  }
  const loopback = isLoopbackAddress(bound.address)
  auth.bound(bound.port, loopback)
  const wildcard = bound.address === '0.0.0.0' || bound.address === '::'
  const shownHost = wildcard ? '127.0.0.1' : bound.address
  return {
    url: `http://${urlHost(shownHost)}:${bound.port}/?token=${auth.token}`,
    host: bound.address,
    port: bound.port,
    loopback,
    requested: (info, answer) => state.requested(info, answer),
    pinShown: (pin, session) => state.pinShown(pin, session),
    noiseSent: (level, report) => state.noiseSent(level, report),
    async close() {
      state.close()
      await server.close()
    },
  }
}
