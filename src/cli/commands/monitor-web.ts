// `cribcall-agent monitor --web`: starts the web console (a dynamic import: nothing of
// it loads without --web) and prints its URL once.
import { CribcallError, type Monitor } from '../../index.js'
import type { Approvals } from '../approvals.js'
import { emit, out, warn } from '../output.js'
import type { WebConsole } from '../web/index.js'
import type { MonitorCmd } from './monitor.js'

export async function startMonitorConsole(
  o: MonitorCmd,
  at: { host: string; port: number },
  monitor: Monitor,
  approvals: Approvals,
  openPairing: (minutes: number) => Promise<void>,
): Promise<WebConsole> {
  const { startWebConsole } = await import('../web/index.js')
  const web = await startWebConsole({
    ...at,
    monitor,
    approvals,
    name: o.name,
    pairMode: o.pair,
    pairMinutes: o.pairMinutes,
    openPairing,
    answered: (info, approved) => {
      if (!out.json && process.stdin.isTTY === true) process.stderr.write(`\n${approved ? 'approved' : 'refused'} "${info.listenerName}" (${info.listenerId}) in the web console\n`)
    },
  }).catch((e: unknown) => {
    throw new CribcallError('ERR_WEB_CONSOLE', `cannot start the web console on ${at.host}:${at.port}: ${e instanceof Error ? e.message : String(e)}`, { cause: e })
  })
  emit('web-console', { url: web.url, host: web.host, port: web.port, loopback: web.loopback }, `web console: ${web.url}\n  (open it in a browser; the token in it is the console's only key, shown once)`)
  if (!web.loopback) {
    const elsewhere = web.host === '0.0.0.0' || web.host === '::' ? " (from another device, put this machine's address in place of 127.0.0.1)" : ''
    warn(new CribcallError('ERR_WEB_NOT_LOOPBACK', `the web console listens on ${web.host}:${web.port}${elsewhere}, reachable from the network over plain HTTP: anyone who learns its URL (token) can pair and revoke listeners; bind it to 127.0.0.1 unless you need it elsewhere`))
  }
  return web
}
