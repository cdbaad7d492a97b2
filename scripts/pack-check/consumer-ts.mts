// TypeScript consumer of the packed cribcall-quic tarball, compiled by scripts/pack-check.mjs
// with `strict` and `module: nodenext` against the installed package's types, then run:
// Node's event conventions (events.on / events.once with an AbortSignal), `await using`
// and the typed error codes, on Monitor, Listener, Endpoint and ControlChannel.
import { on, once } from 'node:events'
import {
  CribcallError,
  Endpoint,
  Listener,
  MemoryTrustStore,
  Monitor,
  generateIdentity,
  type ControlChannel,
  type CribcallErrorCode,
} from 'cribcall-quic'

/** A switch over err.code that the compiler checks against the union. */
function describe(code: CribcallErrorCode): string {
  switch (code) {
    case 'ABORT_ERR':
      return 'aborted'
    case 'ERR_PIN_MISMATCH':
      return 'wrong monitor'
    default:
      return code
  }
}

const closedPromises: Promise<void>[] = []
{
  await using monitor = await Monitor.start({
    identity: generateIdentity(),
    trustStore: new MemoryTrustStore(),
    host: '127.0.0.1',
    port: 0,
    name: 'Nursery',
  })
  closedPromises.push(monitor.closed)
  const opened = once(monitor, 'pairing-opened', { signal: AbortSignal.timeout(5000) })
  monitor.openPairing({ durationMs: 60_000 })
  const [window] = await opened
  if (typeof window.until !== 'number') throw new Error('pairing-opened without until')

  await using listener = new Listener({ identity: generateIdentity({ keyType: 'ed25519' }), trustStore: new MemoryTrustStore(), name: 'Phone' })
  closedPromises.push(listener.closed)
  // events.once on the Listener: its 'paired' event carries the stored entry.
  const pairedEvent = once(listener, 'paired', { signal: AbortSignal.timeout(5000) })
  const entry = await listener.pairWithQr(monitor.pairingQrPayload(), { host: '127.0.0.1', port: monitor.address.port })
  const [announced] = await pairedEvent
  if (announced.deviceId !== entry.deviceId) throw new Error('paired event')
  const connected = once(monitor, 'listener-connected', { signal: AbortSignal.timeout(5000) })
  const channel = await listener.connect(entry.deviceId)
  const [{ channel: control }] = (await connected) as [{ channel: ControlChannel }]

  // events.on over a ListenerChannel, stopped by its AbortSignal after the first event.
  const ac = new AbortController()
  const levels: number[] = []
  const iterating = (async () => {
    for await (const [ev] of on(channel, 'noise', { signal: ac.signal })) {
      levels.push(ev.peakLevel)
      ac.abort()
    }
  })()
  monitor.broadcastNoise({ peakLevel: 42 })
  const stopped = await iterating.then(
    () => 'ended',
    (e: unknown) => (e instanceof Error ? e.name : String(e)),
  )
  if (stopped !== 'AbortError' || levels[0] !== 42) throw new Error(`events.on: ${stopped} ${JSON.stringify(levels)}`)

  // events.once on a ControlChannel: the monitor's side sees the listener go.
  const gone = once(control, 'close', { signal: AbortSignal.timeout(5000) })
  await channel.close()
  await gone

  // An Endpoint: events.once aborted leaves no listener behind.
  await using endpoint = await Endpoint.bind({ host: '127.0.0.1', port: 0, identity: generateIdentity() })
  const abort = new AbortController()
  const never = once(endpoint, 'connection', { signal: abort.signal })
  abort.abort()
  const err = await never.then(
    () => undefined,
    (e: unknown) => e,
  )
  const leftover = endpoint.listenerCount('connection') + endpoint.listenerCount('error')
  if (!(err instanceof Error) || err.name !== 'AbortError' || leftover !== 0) throw new Error(`events.once abort: ${String(err)}, ${leftover} listeners left`)
  const typed = new CribcallError('ERR_PIN_MISMATCH', 'example')
  if (describe(typed.code) !== 'wrong monitor') throw new Error('typed codes')
}
// Both were closed by `await using` at the end of the block.
const settled = await Promise.race([Promise.all(closedPromises).then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 2000).unref())])
if (!settled) throw new Error('await using did not close the monitor and the listener')
console.log(`consumer-ts.mjs: ok — events.on/once with AbortSignal, await using, typed codes (node ${process.version})`)
