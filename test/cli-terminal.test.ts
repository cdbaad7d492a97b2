// cribcall-agent where the terminal matters, driven through a pseudo-terminal (util-linux
// `script`, present on every Debian/Ubuntu): the PIN prompt (Ctrl-C exits 130 at once; a
// wrong PIN is said to be wrong), and the small traps of the option parser (--version,
// --help without the native addon, empty names and directories, a mistyped --dir,
// permission errors, local times).
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { existsSync, promises as fs, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { closeText, localTime } from '../src/cli/output.js'
import { MemoryTrustStore, Monitor, generateIdentity } from '../src/index.js'
import { LOOPBACK, withTimeout } from './helpers.js'
import { decodeTerminal, stripAnsi } from './qr-decode.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const CLI = path.join(here, '..', 'dist', 'cli', 'main.js')
const VERSION = (JSON.parse(readFileSync(path.join(here, '..', 'package.json'), 'utf8')) as { version: string }).version
const hasScript = spawnSync('script', ['--version']).status === 0

let root = ''
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(tmpdir(), 'cribcall-cli-tty-'))
})
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true })
})

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`
}

/** The CLI in a pseudo-terminal: what it prints (the terminal's echo included), and its exit. */
class TtyAgent {
  readonly child: ChildProcessWithoutNullStreams
  output = ''
  readonly exited: Promise<number | null>

  constructor(args: readonly string[], size?: { columns: number; rows: number }) {
    const cli = [process.execPath, CLI, ...args].map(shellQuote).join(' ')
    const command = size === undefined ? cli : `stty cols ${size.columns} rows ${size.rows}; exec ${cli}`
    // -q quiet, -f flush, -e the child's exit code, -c the command; no typescript file.
    this.child = spawn('script', ['-qfec', command, '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, CRIBCALL_AGENT_DIR: path.join(root, 'default-dir'), TERM: 'xterm' },
    })
    this.child.stdout.setEncoding('utf8')
    this.child.stdout.on('data', (s: string) => (this.output += s))
    this.child.stderr.on('data', (s: Buffer) => (this.output += s.toString('utf8')))
    this.exited = new Promise((resolve) => this.child.on('close', (code) => resolve(code)))
  }

  async waitFor(pattern: RegExp, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms
    while (!pattern.test(this.output)) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}; output so far:\n${this.output}`)
      await new Promise((r) => setTimeout(r, 20))
    }
  }

  type(keys: string): void {
    this.child.stdin.write(keys)
  }
}

function run(args: readonly string[], env: NodeJS.ProcessEnv = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, CRIBCALL_AGENT_DIR: path.join(root, 'default-dir'), ...env }, timeout: 20_000 })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe.skipIf(!hasScript)('the PIN prompt in a terminal', () => {
  let monitor: Monitor
  const pins: string[] = []
  beforeAll(async () => {
    monitor = await Monitor.start({ identity: generateIdentity(), trustStore: new MemoryTrustStore(), host: LOOPBACK, port: 0, name: 'Nursery' })
  })
  afterAll(async () => {
    await monitor.close()
  })
  const pairArgs = (dir: string): string[] => ['pair', '--dir', path.join(root, dir), '--host', LOOPBACK, '--port', String(monitor.address.port), '--fingerprint', monitor.identity.fingerprint]

  it('Ctrl-C at the prompt exits 130 at once, and the connection to the monitor closes', async () => {
    monitor.openPairing({ durationMs: 60_000, onPin: (pin) => pins.push(pin) })
    const closed = new Promise<void>((resolve) => monitor.once('listener-disconnected', () => resolve()))
    const agent = new TtyAgent(pairArgs('ctrl-c'))
    await agent.waitFor(/PIN shown on the monitor \(attempt 1\/3\): /)
    const t0 = Date.now()
    agent.type('12') // half a PIN, then Ctrl-C
    agent.type('\x03')
    expect(await withTimeout(agent.exited, 5000, 'the exit after Ctrl-C')).toBe(130)
    expect(Date.now() - t0).toBeLessThan(3000)
    await withTimeout(closed, 5000, 'the monitor seeing the listener leave')
    // Nothing was paired.
    expect(run(['trust', 'list', '--json', '--dir', path.join(root, 'ctrl-c')]).stdout).toBe('')
    monitor.closePairing()
  })

  it('a wrong PIN typed at the prompt is said to be wrong, and the next one pairs', async () => {
    pins.length = 0
    monitor.openPairing({ durationMs: 60_000, onPin: (pin) => pins.push(pin) })
    const agent = new TtyAgent(pairArgs('wrong-pin'))
    await agent.waitFor(/attempt 1\/3\): /)
    const pin = pins.at(-1) as string
    const wrong = pin === '000000' ? '111111' : '000000'
    agent.type(`${wrong}\r`)
    await agent.waitFor(/wrong PIN: the monitor rejected it \(2 attempts left\)/)
    await agent.waitFor(/attempt 2\/3\): /)
    agent.type(`${pin}\r`)
    await agent.waitFor(/paired with Nursery|paired with monitor at/)
    expect(await withTimeout(agent.exited, 5000, 'the exit after pairing')).toBe(0)
    // PIN pairing carries no monitor name: stored under its address unless --monitor-name.
    const list = run(['trust', 'list', '--json', '--dir', path.join(root, 'wrong-pin')])
    expect(JSON.parse(list.stdout.trim()) as { name: string }).toMatchObject({ name: `monitor at ${LOOPBACK}` })
    monitor.closePairing()
  })
})

describe.skipIf(!hasScript)('the QR code in an 80 × 24 terminal', () => {
  it('fits with its quiet zone, decodes to the exact payload printed, and pair --qr pairs with it', async () => {
    const dir = path.join(root, 'qr-monitor')
    const agent = new TtyAgent(['monitor', '--dir', dir, '--host', LOOPBACK, '--port', '0', '--name', 'Nursery monitor', '--auto-approve'], { columns: 80, rows: 24 })
    try {
      await agent.waitFor(/pairing open for 5 min[\s\S]*█{20,}[^\n]*\n[\s\S]*█{20,}[^\n]*\r?\n[^█]*$/)
      const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(agent.output)?.[1])
      const compact = /compact QR payload: '([^']+)'/.exec(agent.output)?.[1] as string
      expect(compact).toMatch(/^CC1:/)
      // The QR code: the last block of lines made only of half blocks and blanks.
      const lines = stripAnsi(agent.output).split(/\r?\n/)
      const qr: string[] = []
      for (let i = lines.length - 1; i >= 0; i--) {
        const l = lines[i] as string
        if (/^[█▀▄ ]+$/.test(l) && l.includes('█')) qr.unshift(l)
        else if (qr.length > 0) break
      }
      expect(qr.length).toBeLessThanOrEqual(23) // and the cursor's line: 24
      expect(Math.max(...qr.map((l) => [...l].length))).toBeLessThanOrEqual(80)
      // A 4-module quiet zone: the first two rows (4 modules) and 4 columns each side are light.
      expect(qr.slice(0, 2).every((l) => /^█+$/.test(l))).toBe(true)
      expect(qr.every((l) => l.startsWith('████') && l.endsWith('████'))).toBe(true)
      expect(decodeTerminal(qr)).toBe(compact)
      // What the terminal shows pairs: a listener types it into pair --qr.
      const r = spawnSync(process.execPath, [CLI, 'pair', '--json', '--dir', path.join(root, 'qr-listener'), '--qr', compact, '--host', LOOPBACK, '--port', String(port)], { encoding: 'utf8', timeout: 20_000 })
      expect(r.status, r.stderr).toBe(0)
      expect(r.stdout).toMatch(/"event":"paired".*"name":"Nursery monitor"/)
    } finally {
      agent.type('\x03')
      await withTimeout(agent.exited, 5000, 'the monitor to stop')
    }
  })
})

describe('options without traps', () => {
  it('--version prints the version; --help and --version never load the native addon', () => {
    for (const args of [['--version'], ['-V'], ['--help'], ['pair', '--help'], ['monitor', '--help']]) {
      // A native library path that cannot load: a command that needed the addon would fail.
      const r = run(args, { NAPI_RS_NATIVE_LIBRARY_PATH: path.join(root, 'no-such-addon.node') })
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0)
      if (args[0] === '--version' || args[0] === '-V') expect(r.stdout.trim()).toBe(VERSION)
    }
    // The check is real: a command that needs the addon fails with that path.
    expect(run(['identity', '--dir', path.join(root, 'addon-check')], { NAPI_RS_NATIVE_LIBRARY_PATH: path.join(root, 'no-such-addon.node') }).code).not.toBe(0)
  })

  it('subcommand help lists the global --json and --debug', () => {
    const r = run(['watch', '--help'])
    expect(r.stdout).toMatch(/Global Options:[\s\S]*--json[\s\S]*--debug/)
  })

  it.each([
    ['monitor --name ""', ['monitor', '--name', '', '--port', '0'], /a name must not be empty/],
    ['monitor --name "   "', ['monitor', '--name', '   ', '--port', '0'], /a name must not be empty/],
    ['pair --name ""', ['pair', '--name', '', '--host', LOOPBACK, '--fingerprint', 'a'.repeat(64)], /a name must not be empty/],
    ['watch --dir ""', ['watch', '--dir', ''], /--dir must not be empty/],
    ['trust list --dir ""', ['trust', 'list', '--dir', ''], /--dir must not be empty/],
  ])('%s: exit 2 with one line', (_what, args, message) => {
    const r = run(args)
    expect(r.code).toBe(2)
    const lines = r.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(message)
    expect(lines[0]).toMatch(/\[ERR_USAGE\]$/)
  })

  it('watch and trust revoke on a mistyped --dir create nothing', () => {
    const typo = path.join(root, 'mistyped')
    const w = run(['watch', '--dir', typo])
    expect(w.code).toBe(1)
    expect(w.stderr).toMatch(/no identity in .*mistyped .*\[ERR_NOT_FOUND\]/)
    expect(existsSync(typo)).toBe(false)
    const t = run(['trust', 'list', '--dir', typo])
    expect(t.code).toBe(0)
    expect(t.stdout).toMatch(/no paired devices in .*mistyped/)
    expect(existsSync(typo)).toBe(false)
  })

  const asNobody = process.getuid?.() === 0 && spawnSync('setpriv', ['--version']).status === 0
  it.runIf(asNobody)("another user's directory: ERR_PERMISSION, one line, and its mode left alone", async () => {
    const theirs = path.join(root, 'theirs')
    await fs.mkdir(theirs, { mode: 0o700 })
    await fs.writeFile(path.join(theirs, 'trust.json'), '{"version":1,"entries":[]}\n', { mode: 0o600 })
    await fs.chmod(root, 0o755)
    const nobody = (args: string[]): { code: number | null; stderr: string } => {
      const r = spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, CLI, ...args], { encoding: 'utf8', timeout: 20_000 })
      return { code: r.status, stderr: r.stderr }
    }
    for (const args of [['trust', 'list', '--dir', theirs], ['identity', '--dir', theirs], ['monitor', '--dir', theirs, '--port', '0']]) {
      const r = nobody(args)
      expect(r.code, args.join(' ')).toBe(1)
      expect(r.stderr.trim().split('\n')).toHaveLength(1)
      expect(r.stderr).toMatch(/permission denied \[ERR_PERMISSION\]/)
    }
    expect((await fs.stat(theirs)).mode & 0o777).toBe(0o700)
  })

  it("'pair' typed into a monitor started with --pair off opens a window offering QR and PIN", async () => {
    const child = spawn(process.execPath, [CLI, 'monitor', '--json', '--dir', path.join(root, 'pair-off'), '--host', LOOPBACK, '--port', '0', '--pair', 'off'], { stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
    const until = async (re: RegExp): Promise<void> => {
      const deadline = Date.now() + 10_000
      while (!re.test(out)) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}: ${out}`)
        await new Promise((r) => setTimeout(r, 20))
      }
    }
    try {
      await until(/"event":"listening"/)
      expect(out).not.toMatch(/"event":"pairing-opened"/)
      child.stdin.write('pair 1\n')
      await until(/"event":"pairing-opened"/)
      const opened = out.split('\n').filter((l) => l.includes('"pairing-opened"')).map((l) => JSON.parse(l) as Record<string, unknown>)
      expect(opened).toEqual([{ event: 'pairing-opened', minutes: 1, qr: true, pin: true }])
      expect(out).toMatch(/"event":"qr","payload":"\{/)
    } finally {
      child.kill('SIGINT')
      await new Promise((r) => child.on('close', r))
    }
  })

  it('times are local and closes without a reason read cleanly', () => {
    const paired = Date.UTC(2026, 0, 2, 3, 4, 5)
    const d = new Date(paired)
    expect(localTime(paired, paired)).toBe(d.toLocaleTimeString(undefined, { hour12: false }))
    expect(localTime(paired, paired + 3 * 86_400_000)).toBe(`${d.toLocaleDateString()} ${d.toLocaleTimeString(undefined, { hour12: false })}`)
    expect(closeText(0, '')).toBe('code 0')
    expect(closeText(2, 'revoked')).toBe('revoked, code 2')
  })

  it('trust list shows times in the local time zone', async () => {
    const dir = path.join(root, 'tz')
    await fs.mkdir(dir, { mode: 0o700 })
    const pairedAt = Date.UTC(2026, 10, 29, 12, 0, 0)
    const entry = { deviceId: '00000000-0000-4000-8000-000000000001', name: 'Nursery', fingerprint: 'ab'.repeat(32), publicKey: Buffer.alloc(65, 4).toString('base64'), role: 'monitor', pairedAt }
    await fs.writeFile(path.join(dir, 'trust.json'), JSON.stringify({ version: 1, entries: [entry] }))
    const r = run(['trust', 'list', '--dir', dir], { TZ: 'Asia/Kolkata' })
    expect(r.code, r.stderr).toBe(0)
    // 12:00 UTC is 17:30 in India (UTC+5:30): shown as such, not as UTC.
    expect(r.stdout).toMatch(/paired (\S+ )?17:30:00, never seen/)
  })
})

