// Lifecycle (issue 8, "Done when"): 1,000 `Endpoint.bind()` / `await close()` cycles under
// `ulimit -n 256` all succeed — `close()` releases every file descriptor (the UDP socket,
// the IO thread's waker) before it resolves, so nothing piles up until garbage collection.
// The cycles run in a child process (`bash -c 'ulimit -n 256 && node <script>'`, the
// script importing dist/index.js, so run `npm run build:ts` first), which also compares
// its /proc/self/fd count before and after.
import { spawn } from 'node:child_process'
import { existsSync, promises as fs } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'

const DIST = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'index.js')
const CYCLES = 1000
const FD_LIMIT = 256

let dir = ''

beforeAll(async () => {
  expect(existsSync(DIST), `${DIST} is missing: run 'npm run build:ts' first`).toBe(true)
  dir = await fs.mkdtemp(path.join(tmpdir(), 'cribcall-fd-'))
})
afterAll(async () => {
  if (dir !== '') await fs.rm(dir, { recursive: true, force: true })
})

/** The child: binds and closes CYCLES endpoints, one at a time; prints one JSON line. */
const script = (dist: string): string => `
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { Endpoint, generateIdentity } from ${JSON.stringify(pathToFileURL(dist).href)}

const fds = () => readdirSync('/proc/self/fd')
const describe = (list) => list.map((fd) => { try { return fd + '->' + readlinkSync('/proc/self/fd/' + fd) } catch { return fd + '->?' } })
const identity = generateIdentity()
// The soft limit this process really runs under (from the kernel, not from argv).
const limit = Number(/^Max open files\\s+(\\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1])
const cycles = Number(process.argv[2])
const before = fds()
let done = 0
let maxOpen = before.length
let error
try {
  for (let i = 0; i < cycles; i++) {
    const ep = await Endpoint.bind({ host: '127.0.0.1', port: 0, identity })
    maxOpen = Math.max(maxOpen, fds().length)
    await ep.close()
    done++
  }
} catch (e) {
  error = { code: e?.code, message: String(e?.message ?? e) }
}
const after = fds()
const leaked = after.filter((fd) => !before.includes(fd))
process.stdout.write(JSON.stringify({ limit, done, before: before.length, after: after.length, maxOpen, leaked: describe(leaked), error }) + '\\n')
process.exit(error === undefined ? 0 : 1)
`

it(`${CYCLES} Endpoint.bind/close cycles succeed under ulimit -n ${FD_LIMIT}, and leave no file descriptor behind`, async () => {
  const file = path.join(dir, 'cycles.mjs')
  await fs.writeFile(file, script(DIST))
  const child = spawn('bash', ['-c', `ulimit -n ${FD_LIMIT} && exec "$0" "$@"`, process.execPath, file, String(CYCLES)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c))
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c))
  let timer: NodeJS.Timeout | undefined
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('close', (c) => resolve(c))
      child.on('error', reject)
      timer = setTimeout(() => reject(new Error(`the cycles did not finish within 150 s\n${stdout}${stderr}`)), 150_000)
    })
    const line = stdout.split('\n').find((l) => l.startsWith('{'))
    expect(line, `no result line\n--- stdout:\n${stdout}--- stderr:\n${stderr}`).toBeDefined()
    const r = JSON.parse(line!) as { limit: number; done: number; before: number; after: number; maxOpen: number; leaked: string[]; error?: unknown }
    console.log(`fd-leak: ${r.done}/${CYCLES} cycles under ulimit -n ${r.limit}; fds before ${r.before}, after ${r.after}, at most ${r.maxOpen} open`)
    expect(r.limit).toBe(FD_LIMIT)
    expect(r.error, stderr).toBeUndefined()
    expect(code, stderr).toBe(0)
    expect(r.done).toBe(CYCLES)
    expect(r.leaked).toEqual([])
    expect(r.after).toBe(r.before)
  } finally {
    clearTimeout(timer)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
}, 180_000)
