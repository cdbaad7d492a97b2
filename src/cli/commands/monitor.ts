// `cribcall-agent monitor`: a monitor with a pairing window, approvals, NOISE_EVENTs
// from stdin, and optionally the web console.
import { createInterface } from 'node:readline'
import { CribcallError, Monitor, type ControlChannel, type PairingRequestInfo, type TrustEntry } from '../../index.js'
import { Approvals } from '../approvals.js'
import { onInterrupt } from '../interrupt.js'
import { parsePositive } from '../options.js'
import { terminalQr, terminalSize } from '../qr-terminal.js'
import { closeText, emit, out, UsageError, warn } from '../output.js'
import { openState } from '../state.js'
import type { WebConsole } from '../web/index.js'

export type PairMode = 'qr' | 'pin' | 'both' | 'off'

export interface MonitorCmd {
  dir: string
  host: string
  port: number
  name: string
  pair: PairMode
  pairMinutes: number
  autoApprove?: boolean
  allowLegacyQr?: boolean
  /** --web [HOST:]PORT: the web console (src/cli/web/, loaded only then). */
  web?: { host: string; port: number }
}

/** The monitor's stdin commands (any other line answers a y/N prompt on a terminal). */
const MONITOR_COMMANDS: ReadonlySet<string> = new Set(['noise', 'pair', 'close-pairing', 'unpair', 'revoke', 'approve', 'refuse'])

export async function cmdMonitor(o: MonitorCmd): Promise<void> {
  const { identity, store } = await openState(o.dir, { create: true })
  const monitor = await Monitor.start({ identity, trustStore: store, host: o.host, port: o.port, name: o.name })
  // Another process (`cribcall-agent trust revoke`) may change the trust store: reload it,
  // and the monitor disconnects revoked listeners at once.
  const unwatch = store.watch((e) => warn(e instanceof CribcallError ? e : new CribcallError('ERR_TRUST_STORE', `trust store: ${String(e)}`)))
  let web: WebConsole | undefined
  onInterrupt(async () => {
    unwatch()
    await web?.close()
    await monitor.close()
  })
  const { host, port } = monitor.address
  emit('listening', { host, port, fingerprint: identity.fingerprint, deviceId: identity.deviceId }, `monitor ${o.name} listening on ${host}:${port}\nfingerprint ${identity.fingerprint}`)
  reportMonitorEvents(monitor)

  // Each new listener is approved by the operator unless --auto-approve: a y/N prompt
  // on a terminal, else an `approve-request` event answered by `approve|refuse <id>`.
  const approvals = new Approvals({
    interactive: process.stdin.isTTY === true && !out.json,
    emit,
    prompt: (text) => process.stderr.write(text),
  })
  /** Opens the window with `mode` (the `pair` command of a monitor started with --pair off offers both). */
  const openPairing = async (minutes: number, mode: Exclude<PairMode, 'off'> = o.pair === 'off' ? 'both' : o.pair): Promise<void> => {
    monitor.openPairing({
      durationMs: Math.round(minutes * 60_000),
      allowQr: mode !== 'pin',
      allowPin: mode !== 'qr',
      allowLegacyQr: o.allowLegacyQr === true,
      ...(o.autoApprove === true ? {} : { approve: (request) => webTracked(web, request, approvals.request(request)) }),
      onPin: (pin, session) => {
        web?.pinShown(pin, session)
        emit('pin', { pin, pairingSessionId: session.pairingSessionId, expiresInSec: session.expiresInSec, listenerName: session.listenerName }, `PIN for ${session.listenerName}: ${pin} (expires in ${session.expiresInSec} s)`)
      },
    })
    const payload = monitor.pairingQrPayload()
    const compact = mode === 'pin' ? undefined : monitor.pairingQrCompact()
    if (mode !== 'pin') {
      emit('qr', { payload, ...(compact === undefined ? {} : { compact }) }, `pairing QR payload: ${payload}${compact === undefined ? '' : `\ncompact QR payload: '${compact}'`}`)
    }
    emit('pairing-opened', { minutes, qr: mode !== 'pin', pin: mode !== 'qr' }, `pairing open for ${minutes} min (${mode === 'both' ? 'QR and PIN' : mode.toUpperCase()})`)
    // The QR code last, so that nothing pushes it off the screen: the JSON form when its
    // code fits the terminal, else the compact form (SPEC §7.1.8; 45 × 23 on 80 × 24).
    if (mode !== 'pin' && !out.json && process.stdout.isTTY) {
      const qr = terminalQr(payload, compact, { ...terminalSize(process.stdout), ansi: process.env.NO_COLOR === undefined })
      if (!qr.fits) process.stdout.write(`(the QR code needs a terminal of ${qr.columns} × ${qr.rows + 1}: enlarge it and type 'pair' to show it again)\n`)
      process.stdout.write(qr.lines.join('\n') + '\n')
    }
  }
  if (o.web !== undefined) {
    const { startMonitorConsole } = await import('./monitor-web.js')
    web = await startMonitorConsole(o, o.web, monitor, approvals, openPairing)
  }
  if (o.pair !== 'off') await openPairing(o.pairMinutes)
  readCommands(monitor, o, approvals, () => web, openPairing)
  await new Promise<void>(() => undefined) // runs until interrupted
}

/** The monitor's events as output lines. */
function reportMonitorEvents(monitor: Monitor): void {
  // The entry of each live channel: a revoked listener's entry is gone from the store by
  // the time its channel closes, but its `disconnected` event still names it.
  const known = new Map<ControlChannel, TrustEntry>()
  monitor.on('listener-connected', ({ channel, entry }) => {
    if (entry !== undefined) known.set(channel, entry)
    emit('connected', { deviceId: entry?.deviceId ?? null, fingerprint: channel.peerFingerprint, trusted: channel.trust === 'trusted' }, `listener ${entry?.name ?? '(pairing)'} connected (${channel.peerFingerprint.slice(0, 16)}…)`)
  })
  monitor.on('listener-disconnected', ({ channel, entry: current, code, reason }) => {
    const entry = current ?? known.get(channel)
    known.delete(channel)
    emit('disconnected', { deviceId: entry?.deviceId ?? null, fingerprint: channel.peerFingerprint, code, reason }, `listener ${entry?.name ?? '(pairing)'} disconnected (${closeText(code, reason)})`)
  })
  monitor.on('paired', ({ entry, method, channel }) => {
    known.set(channel, entry)
    emit('paired', { deviceId: entry.deviceId, name: entry.name, fingerprint: entry.fingerprint, method }, `paired ${entry.name} (${entry.deviceId}) by ${method}`)
  })
  monitor.on('pairing-failed', ({ method, reason, fingerprint }) => emit('pairing-failed', { method, reason, fingerprint }, `pairing failed (${method}): ${reason}`))
  monitor.on('revoked', (entry) => emit('revoked', { deviceId: entry.deviceId, fingerprint: entry.fingerprint }, `revoked ${entry.name} (${entry.deviceId})`))
  monitor.on('pairing-closed', ({ reason }) => emit('pairing-closed', { reason }, `pairing closed (${reason})`))
  monitor.on('error', (e) => warn(e))
}

/** stdin: `noise <level>`, `pair [minutes]`, `close-pairing`, `revoke <id>`, `approve|refuse <id>`. */
function readCommands(
  monitor: Monitor,
  o: MonitorCmd,
  approvals: Approvals,
  web: () => WebConsole | undefined,
  openPairing: (minutes: number) => Promise<void>,
): void {
  const rl = createInterface({ input: process.stdin, terminal: false })
  // With the web console, requests can still be answered there once stdin has ended.
  rl.on('close', () => {
    if (web() === undefined) approvals.inputEnded()
  })
  rl.on('line', (line) => {
    const [cmd, arg] = line.trim().split(/\s+/)
    const prompts = approvals.promptCount
    try {
      const known = cmd !== undefined && MONITOR_COMMANDS.has(cmd)
      // On a terminal, any other line (Enter included) answers the y/N prompt shown.
      if (!known && approvals.awaitingAnswer) return approvals.answerPrompt(line)
      if (cmd === undefined || cmd === '') return
      if (cmd === 'approve' || cmd === 'refuse') {
        if (arg === undefined) throw new UsageError(`usage: ${cmd} <listenerId>`)
        const r = approvals.answer(arg, cmd === 'approve')
        if (!r.ok) warn(new CribcallError('ERR_NOT_FOUND', r.message))
      } else if (cmd === 'noise') {
        sendNoise(monitor, arg, web())
      } else if (cmd === 'pair') {
        openPairing(arg === undefined ? o.pairMinutes : parsePositive(arg)).catch((e: unknown) => warn(e))
      } else if (cmd === 'unpair' || cmd === 'close-pairing') {
        monitor.closePairing()
      } else if (cmd === 'revoke' && arg !== undefined) {
        monitor.revoke(arg.toLowerCase()).then(
          (e) => {
            if (e === undefined) warn(new CribcallError('ERR_NOT_FOUND', `no paired device ${arg}`))
          },
          (e: unknown) => warn(e),
        )
      } else {
        throw new UsageError(`unknown command '${cmd}' (noise <level> | pair [minutes] | close-pairing | revoke <deviceId> | approve <listenerId> | refuse <listenerId>)`)
      }
    } catch (e) {
      warn(e)
    }
    // A command ran while a y/N prompt waited: show it again (unless a new one was just shown).
    if (approvals.awaitingAnswer && approvals.promptCount === prompts) approvals.repeatPrompt()
  })
}

function sendNoise(monitor: Monitor, arg: string | undefined, web: WebConsole | undefined): void {
  const level = Number(arg)
  if (arg === undefined || !/^\d{1,3}$/.test(arg) || level > 100) throw new UsageError('usage: noise <level 0-100>')
  const report = monitor.broadcastNoise({ peakLevel: level })
  web?.noiseSent(level, report)
  const notConnected = report.listeners.filter((l) => l.outcome === 'not-connected').length
  const tooSlow = report.listeners.filter((l) => l.outcome === 'disconnected-too-slow').length
  emit(
    'noise-sent',
    { peakLevel: level, timestamp: report.timestamp, listeners: report.delivered, notConnected, tooSlow },
    `NOISE_EVENT ${level} sent to ${report.delivered} listener(s)` +
      (notConnected > 0 ? `; ${notConnected} paired listener(s) not connected (replayed if back within the replay window)` : '') +
      (tooSlow > 0 ? `; ${tooSlow} disconnected as too slow (caught up when back)` : ''),
  )
}

/** The approve hook's answer, shown in the web console until it settles. */
function webTracked(web: WebConsole | undefined, request: PairingRequestInfo, answer: Promise<boolean>): Promise<boolean> {
  web?.requested(request, answer)
  return answer
}
