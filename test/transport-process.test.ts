// The QUIC transport seen from a whole process: child processes (test/fixtures/*.mjs)
// using dist/ — idle cost of connections, and exit right after close().
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('..', import.meta.url))

describe('process-level behaviour (child processes using dist/)', () => {
  const dist = `${root}dist/index.js`

  function runFixture(
    name: string,
    onLine?: (line: string, child: ReturnType<typeof spawn>) => void,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null; lines: string[]; stderr: string; exitedAt: number }> {
    if (!existsSync(dist)) throw new Error(`${dist} is missing: run \`npm run build\` first (npm test does)`)
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [`${root}test/fixtures/${name}`], { stdio: ['ignore', 'pipe', 'pipe'] })
      const lines: string[] = []
      let stderr = ''
      let partial = ''
      child.stdout!.setEncoding('utf8')
      child.stdout!.on('data', (chunk: string) => {
        partial += chunk
        let nl: number
        while ((nl = partial.indexOf('\n')) >= 0) {
          const line = partial.slice(0, nl)
          partial = partial.slice(nl + 1)
          lines.push(line)
          onLine?.(line, child)
        }
      })
      child.stderr!.setEncoding('utf8')
      child.stderr!.on('data', (chunk: string) => {
        stderr += chunk
      })
      child.on('error', reject)
      child.on('exit', (code, signal) => {
        resolve({ code, signal, lines, stderr, exitedAt: Date.now() })
      })
    })
  }

  it('10 idle connections over 5 s: at most one PING and one ACK per connection, < 50 ms of IO-thread CPU', async () => {
    const result = await runFixture('idle.mjs')
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    const report = JSON.parse(result.lines.at(-1) ?? '{}') as {
      ioThreadsCpuMs?: number
      packetsSent: number
      cpuMs: number
      wallMs: number
      serverConnections: number
      clientConnectionsOpen: number
    }
    expect(report.serverConnections).toBe(10)
    expect(report.clientConnectionsOpen).toBe(10)
    expect(report.wallMs).toBeGreaterThanOrEqual(4900)
    // Keep-alive every 5 s: one PING from one end and its ACK from the other (plus at
    // most one more exchange at the edge of the window) per connection.
    expect(report.packetsSent).toBeLessThanOrEqual(10 * 4)
    // Our threads only: the process total also holds V8's own idle work (a clean-up
    // garbage collection some seconds after start-up), which is not ours to bound.
    expect(report.ioThreadsCpuMs ?? report.cpuMs).toBeLessThan(50)
  })

  it('a script that binds, connects, exchanges frames and closes exits within 1 s of close(); the native threads are gone', async () => {
    let closedAt = 0
    let lateKill: NodeJS.Timeout | undefined
    let killedLate = false
    const result = await runFixture('exit.mjs', (line, child) => {
      const msg = JSON.parse(line) as { event: string; t: number }
      if (msg.event === 'closed') {
        closedAt = msg.t
        lateKill = setTimeout(() => {
          killedLate = true
          child.kill('SIGKILL')
        }, 1000)
      }
    })
    clearTimeout(lateKill)
    expect(result.stderr).toBe('')
    expect(killedLate, 'the process had not exited 1000 ms after close() resolved').toBe(false)
    expect(result.code).toBe(0)
    expect(closedAt).toBeGreaterThan(0)
    expect(result.exitedAt - closedAt).toBeLessThanOrEqual(1000)
    const closed = JSON.parse(result.lines.find((l) => l.includes('"closed"'))!) as {
      framesEchoed: number
      tasksBefore: number
      tasksAfterClose: number
      tasksSettled: number
      tasksWhileOpen: number
    }
    expect(closed.framesEchoed).toBe(10)
    expect(closed.tasksWhileOpen).toBeGreaterThan(closed.tasksBefore) // the IO threads existed
    expect(closed.tasksSettled).toBeLessThanOrEqual(closed.tasksBefore)
  })
})
