// Shared by the ControlChannel test files (control-channel*.test.ts): endpoints bound per
// test, uncaught exceptions and unhandled rejections recorded per test, and a monitor
// endpoint that wraps every accepted connection in a ControlChannel.
import { afterEach, beforeEach, vi } from 'vitest'

import { ControlChannel, generateIdentity, type Endpoint, type Identity } from '../src/index.js'
import { Harness, withTimeout } from './helpers.js'

export interface ChannelMonitorOptions {
  known?: Identity[]
  acceptUnknown?: boolean
  idleTimeoutMs?: number
}

export interface MonitorWithChannels {
  monitor: Endpoint
  id: Identity
  channels: ControlChannel[]
  next: () => Promise<ControlChannel>
}

export interface ChannelTestContext {
  /** Endpoints bound during a test; all closed after it. */
  readonly h: Harness
  /** Uncaught exceptions and unhandled rejections seen during the current test. */
  readonly uncaught: unknown[]
  /** A monitor endpoint that wraps every accepted connection in a ControlChannel. */
  monitorWithChannels(options?: ChannelMonitorOptions): Promise<MonitorWithChannels>
}

/** Call once at the top level of a test file. After each test: mocks restored, endpoints closed. */
export function useChannelTestContext(): ChannelTestContext {
  const h = new Harness()
  const uncaught: unknown[] = []
  const onUncaught = (e: unknown): void => {
    uncaught.push(e)
  }
  beforeEach(() => {
    uncaught.length = 0
    process.on('uncaughtException', onUncaught)
    process.on('unhandledRejection', onUncaught)
  })
  afterEach(async () => {
    process.off('uncaughtException', onUncaught)
    process.off('unhandledRejection', onUncaught)
    vi.restoreAllMocks()
    await h.closeAll()
  })

  async function monitorWithChannels(options: ChannelMonitorOptions = {}): Promise<MonitorWithChannels> {
    const id = generateIdentity()
    const monitor = await h.bind(id, options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: options.idleTimeoutMs })
    monitor.setKnownPeers((options.known ?? []).map((k) => k.fingerprint))
    monitor.listen({ acceptUnknown: options.acceptUnknown ?? false })
    const channels: ControlChannel[] = []
    let waiting: Array<(c: ControlChannel) => void> = []
    monitor.on('connection', (c) => {
      const ch = ControlChannel.accept(c)
      channels.push(ch)
      const w = waiting
      waiting = []
      for (const f of w) f(ch)
    })
    const next = (): Promise<ControlChannel> =>
      withTimeout(new Promise<ControlChannel>((resolve) => waiting.push(resolve)), 5000, 'a monitor channel')
    return { monitor, id, channels, next }
  }

  return { h, uncaught, monitorWithChannels }
}
