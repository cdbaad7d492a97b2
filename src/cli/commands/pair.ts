// `cribcall-agent pair`: pair with a monitor as a listener, by QR payload or by
// fingerprint + PIN.
import { CribcallError, Listener, parseQrPayload } from '../../index.js'
import { onInterrupt } from '../interrupt.js'
import { DEFAULT_PORT, PIN_RE } from '../options.js'
import { emit, EXIT, UsageError } from '../output.js'
import { PinSource } from '../pin-source.js'
import { openState } from '../state.js'

export interface PairCmd {
  dir: string
  qr?: string
  host?: string
  port?: number
  fingerprint?: string
  pin?: string
  name: string
  /** PIN pairing carries no monitor name: what to store it as. */
  monitorName?: string
  timeoutSeconds: number
}

/** How often `pair` says it is still waiting for the monitor to answer. */
const STILL_WAITING_MS = 5000

function checkPairOptions(o: PairCmd): void {
  if (o.qr === undefined && o.fingerprint === undefined) throw new UsageError("give --qr with the QR code's text, or --fingerprint F for PIN pairing")
  if (o.qr !== undefined && o.fingerprint !== undefined) throw new UsageError('--qr and --fingerprint exclude each other')
  if (o.qr !== undefined && o.pin !== undefined) throw new UsageError('--pin is for PIN pairing (--fingerprint), not --qr')
  if (o.qr !== undefined && o.monitorName !== undefined) throw new UsageError('--monitor-name is for PIN pairing; a QR code carries the name')
  if (o.host === undefined) throw new UsageError('--host is required (the monitor address; a QR payload carries no address)')
  if (o.pin !== undefined && !PIN_RE.test(o.pin)) throw new UsageError(`invalid PIN '${o.pin}' (expected 6 digits)`)
  if (o.qr !== undefined) {
    try {
      parseQrPayload(o.qr)
    } catch (e) {
      throw new UsageError(`invalid --qr: ${e instanceof Error ? e.message : String(e)}`, e instanceof CribcallError ? e.code : 'ERR_USAGE')
    }
  }
}

export async function cmdPair(o: PairCmd): Promise<void> {
  checkPairOptions(o)
  const { identity, store } = await openState(o.dir, { create: true })
  const listener = new Listener({ identity, trustStore: store, name: o.name })
  const pins = new PinSource()
  const interrupt = new AbortController()
  // Ctrl-C: abandon the pairing (the monitor sees the connection close), exit 130.
  onInterrupt(async () => {
    interrupt.abort(new CribcallError('ERR_INTERRUPTED', 'pairing interrupted'))
    pins.close()
    await listener.close()
  }, EXIT.INTERRUPTED)
  const port = o.port ?? (o.qr === undefined ? DEFAULT_PORT : undefined)
  const where = port === undefined ? o.host : `${o.host}:${port}`
  emit('connecting', { host: o.host, port: port ?? null }, `connecting to the monitor at ${where}…`)
  let pinAsked = false
  let answered = false
  const started = Date.now()
  const waiting = setInterval(() => {
    if (answered) return
    const s = Math.round((Date.now() - started) / 1000)
    emit('waiting', { seconds: s }, `still waiting for the monitor at ${where} (${s} s; gives up after ${o.timeoutSeconds} s)`)
  }, STILL_WAITING_MS)
  try {
    const target = { host: o.host as string, timeoutMs: Math.round(o.timeoutSeconds * 1000), signal: interrupt.signal, ...(port === undefined ? {} : { port }) }
    const entry =
      o.qr !== undefined
        ? await listener.pairWithQr(o.qr, target)
        : await listener.pairWithPin(
            { ...target, monitorFingerprint: o.fingerprint as string, ...(o.monitorName === undefined ? {} : { monitorName: o.monitorName }) },
            async (info) => {
              pinAsked = answered = true
              if (o.pin !== undefined) {
                if (info.attempt > 1) throw new CribcallError('ERR_PAIRING_REJECTED', 'wrong PIN: the monitor rejected it (--pin gives one attempt)')
                return o.pin
              }
              return pins.next(info)
            },
          )
    emit('paired', { deviceId: entry.deviceId, name: entry.name, fingerprint: entry.fingerprint }, `paired with ${entry.name} (${entry.deviceId})`)
  } catch (e) {
    if (interrupt.signal.aborted) return new Promise<void>(() => undefined) // the interrupt handler exits
    throw explainPairError(e, where as string, o.timeoutSeconds, pinAsked)
  } finally {
    clearInterval(waiting)
    pins.close()
    await listener.close()
  }
}

/** Adds what the user needs to know to the errors `pair` typically meets. */
function explainPairError(e: unknown, where: string, timeoutSeconds: number, pinAsked: boolean): unknown {
  if (!(e instanceof CribcallError)) return e
  const timedOut = e.code === 'ABORT_ERR' && e.cause instanceof Error && e.cause.name === 'TimeoutError'
  if (timedOut && !pinAsked) {
    return new CribcallError('ERR_HANDSHAKE_TIMEOUT', `no answer from a monitor at ${where} within ${timeoutSeconds} s (handshake timeout; is the monitor running there?)`, { cause: e })
  }
  if (timedOut) return new CribcallError('ERR_TIMEOUT', `pairing with ${where} did not finish within ${timeoutSeconds} s`, { cause: e })
  switch (e.code) {
    case 'ERR_HANDSHAKE_TIMEOUT':
      return new CribcallError(e.code, `no answer from a monitor at ${where} (handshake timeout; is the monitor running there?)`, { cause: e })
    case 'ERR_PIN_MISMATCH':
      return new CribcallError(e.code, `the monitor at ${where} presented another certificate than the expected fingerprint (${e.message})`, { cause: e })
    case 'ERR_CONNECTION_CLOSED':
      return new CribcallError(e.code, `the connection to the monitor at ${where} was lost during pairing (${e.message})`, { cause: e })
    case 'ERR_PEER_REJECTED':
      return new CribcallError(e.code, `the monitor at ${where} refused this device (is its pairing window open?)`, { cause: e })
    default:
      return e
  }
}
