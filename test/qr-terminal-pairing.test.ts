// The pairing QR code in a terminal (SPEC.md §7.1.8): a Listener pairs over loopback with
// the compact form decoded from what the terminal shows.
import { afterEach, describe, expect, it } from 'vitest'

import { terminalQr } from '../src/cli/qr-terminal.js'
import { Listener, MemoryTrustStore, Monitor, PairingRejectedError, generateIdentity, type Identity } from '../src/index.js'
import { compactQrName, parseQrPayload } from '../src/pairing/qr.js'
import { LOOPBACK } from './helpers.js'
import { decodeTerminal } from './qr-decode.js'

const cleanups: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined)
})

// ---------------------------------------------------------------------------
// Pairing with what the terminal shows
// ---------------------------------------------------------------------------

describe('pairing with the compact form over loopback', () => {
  async function startMonitor(name: string): Promise<{ monitor: Monitor; store: MemoryTrustStore }> {
    const store = new MemoryTrustStore()
    const monitor = await Monitor.start({ host: LOOPBACK, port: 0, name, identity: generateIdentity(), trustStore: store })
    monitor.on('error', () => undefined)
    cleanups.push(() => monitor.close())
    return { monitor, store }
  }
  function newListener(): { listener: Listener; identity: Identity; store: MemoryTrustStore } {
    const identity = generateIdentity()
    const store = new MemoryTrustStore()
    const listener = new Listener({ identity, trustStore: store, name: 'Parent phone', endpoint: { handshakeTimeoutMs: 3000 } })
    cleanups.push(() => listener.close())
    return { listener, identity, store }
  }

  it('pairingQrCompact(): only while a window allows QR pairing; the payload of pairingQrPayload() without the key', async () => {
    const { monitor } = await startMonitor('Nursery monitor')
    expect(monitor.pairingQrCompact()).toBeUndefined()
    monitor.openPairing({ allowQr: false, onPin: () => undefined })
    expect(monitor.pairingQrCompact()).toBeUndefined()
    monitor.openPairing()
    const { monitorPublicKey: _, ...json } = parseQrPayload(monitor.pairingQrPayload())
    expect(parseQrPayload(monitor.pairingQrCompact() as string)).toEqual(json)
    expect(json.service.defaultPort).toBe(monitor.address.port)
    monitor.closePairing()
    expect(monitor.pairingQrCompact()).toBeUndefined()
  })

  it('a listener pairs with the text decoded from the terminal; both store each other', async () => {
    const { monitor, store: monitorStore } = await startMonitor('Nursery monitor')
    monitor.openPairing()
    const shown = terminalQr(monitor.pairingQrPayload(), monitor.pairingQrCompact(), { columns: 80, rows: 24 })
    expect(shown.form).toBe('compact')
    const scanned = decodeTerminal(shown.lines) as string
    expect(scanned).toBe(monitor.pairingQrCompact())
    const { listener, identity, store } = newListener()
    const entry = await listener.pairWithQr(scanned, { host: LOOPBACK, port: monitor.address.port })
    expect(entry).toMatchObject({ deviceId: monitor.deviceId, name: 'Nursery monitor', fingerprint: monitor.fingerprint, role: 'monitor' })
    expect(store.list()).toHaveLength(1)
    expect(monitorStore.list().map((e) => e.fingerprint)).toEqual([identity.fingerprint])
  })

  it('a long name is stored as the compact form carries it; a code of an earlier window pairs nobody', async () => {
    const name = 'The baby monitor upstairs'
    const { monitor, store: monitorStore } = await startMonitor(name)
    monitor.openPairing()
    const old = monitor.pairingQrCompact() as string
    monitor.openPairing() // a new window, a new secret
    const current = monitor.pairingQrCompact() as string
    expect(current).not.toBe(old)

    const stale = newListener()
    const err = await stale.listener.pairWithQr(old, { host: LOOPBACK, port: monitor.address.port }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(PairingRejectedError)
    expect(monitorStore.list()).toHaveLength(0)

    const { listener } = newListener()
    const entry = await listener.pairWithQr(current, { host: LOOPBACK, port: monitor.address.port })
    expect(entry.name).toBe('The baby monitor u')
    expect(entry.name).toBe(compactQrName(name))
    expect(monitorStore.list()).toHaveLength(1)
  })

  it('the port comes from the compact form when the target has none', async () => {
    const { monitor } = await startMonitor('Nursery')
    monitor.openPairing()
    const { listener } = newListener()
    const entry = await listener.pairWithQr(monitor.pairingQrCompact() as string, { host: LOOPBACK })
    expect(entry.deviceId).toBe(monitor.deviceId)
  })
})
