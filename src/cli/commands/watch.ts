// `cribcall-agent watch`: connect to every paired monitor and print NOISE_EVENTs.
import { AppErrorCode, CribcallError, Listener, type ListenerChannel, type TrustEntry } from '../../index.js'
import { onInterrupt } from '../interrupt.js'
import { closeText, emit, EXIT, localTime, warn } from '../output.js'
import { openState } from '../state.js'

export async function cmdWatch(o: { dir: string }): Promise<void> {
  // A mistyped --dir is an error, not a new identity.
  const { identity, store } = await openState(o.dir, { create: false })
  const monitors = store.list().filter((e) => e.role === 'monitor')
  if (monitors.length === 0) throw new CribcallError('ERR_NOT_PAIRED', `no paired monitor in ${o.dir}; run 'cribcall-agent pair' first`)
  const listener = new Listener({ identity, trustStore: store, name: 'cribcall-agent' })
  let stopping = false
  onInterrupt(async () => {
    stopping = true
    await listener.close()
  })
  // watch runs while at least one monitor channel is alive; it exits when the last one
  // ended for good: 3 when every monitor revoked or refused this listener, else 1.
  let remaining = monitors.length
  let allRefused = true
  const ended = (refused: boolean): void => {
    if (!refused) allRefused = false
    if (--remaining > 0 || stopping) return
    stopping = true
    void listener.close().finally(() => process.exit(allRefused ? EXIT.REVOKED : EXIT.FAILURE))
  }
  for (const m of monitors) {
    const ids = { deviceId: m.deviceId, fingerprint: m.fingerprint }
    emit('connecting', { ...ids, name: m.name, address: m.lastAddress ?? null }, `connecting to ${m.name} (${m.deviceId}) at ${m.lastAddress ?? '?'}`)
    let ch: ListenerChannel
    try {
      ch = listener.openChannel(m.deviceId)
    } catch (e) {
      warn(e, ids)
      ended(false)
      continue
    }
    watchChannel(ch, m, () => stopping, ended)
  }
  await new Promise<void>(() => undefined)
}

/**
 * Prints one monitor channel's events. Transient closes (busy, idle timeout, reset,
 * network) print `disconnected` and `reconnecting` and the channel carries on; only a
 * final close prints `disconnected` with `final: true` and calls `ended`.
 */
function watchChannel(ch: ListenerChannel, m: TrustEntry, stopping: () => boolean, ended: (refused: boolean) => void): void {
  const ids = { deviceId: m.deviceId, fingerprint: m.fingerprint }
  ch.on('connected', ({ attempt }) => emit('connected', ids, attempt > 1 ? `reconnected to ${m.name}` : `connected to ${m.name} (${m.deviceId})`))
  ch.on('disconnected', (info) => {
    // A final disconnect is printed once, by 'close' (with final: true).
    if (!info.final) emit('disconnected', { ...ids, code: info.code, reason: info.reason }, `disconnected from ${m.name} (${closeText(info.code, info.reason)})`)
  })
  ch.on('reconnecting', ({ attempt, delayMs, error }) =>
    emit('reconnecting', { ...ids, attempt, delayMs }, `reconnecting to ${m.name} in ${delayMs} ms (attempt ${attempt})${error === undefined ? '' : `: ${error.message}`}`),
  )
  ch.on('noise', (n) =>
    emit('noise', { monitorId: n.monitorId, timestamp: n.timestamp, peakLevel: n.peakLevel, receivedAt: Date.now() }, `noise from ${m.name}: level ${n.peakLevel} at ${localTime(n.timestamp)}`),
  )
  ch.on('error', (e) => warn(e, ids))
  ch.on('close', (info) => {
    if (stopping()) return // closed by us (Ctrl-C)
    // Refused: the monitor's admission turned this listener's certificate away, or the
    // monitor closed with UNAUTHORIZED (revoked). A changed monitor identity is not a refusal.
    const refused = info.errorCode === 'ERR_PEER_REJECTED' || (info.errorCode === undefined && info.byPeer && info.application && info.code === AppErrorCode.UNAUTHORIZED)
    emit('disconnected', { ...ids, code: info.code, reason: info.reason, final: true }, `channel to ${m.name} closed for good: ${closeText(info.code, info.reason)}${refused ? ' (this listener was revoked or refused)' : ''}`)
    ended(refused)
  })
}
