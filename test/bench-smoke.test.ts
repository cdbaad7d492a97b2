// Smoke run of the benchmark suite (issue #10: "a CI smoke run of the bench proves it
// still works"): `node bench/run.mjs --smoke --runs 1 --out <tmp>` against the built
// dist/ (run `npm run build` first), every workload with tiny sizes, server and clients
// in separate processes. Only the structure of the output is asserted — exit code,
// results.json with finite numbers for every workload and both implementations, the
// Markdown table — never a timing or a ratio.
import { spawn } from 'node:child_process'
import { existsSync, promises as fs } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const WORKLOADS = ['connect', 'rtt', 'fanout', 'bulk', 'idle', 'memory', 'import', 'scale']
const IMPLS = ['tls', 'quic']

interface Summary {
  median: number
  min: number
  max: number
  n: number
}
interface ImplBlock {
  runs: Record<string, number>[]
  summary: Record<string, Summary>
  errors: { run: number; message: string }[]
  notRun?: string
}
interface Results {
  machine: { cpuModel: string; cpuCount: number; node: string }
  workloads: Record<string, { impls: Record<string, ImplBlock> }>
  errors: unknown[]
}

let dir = ''
beforeAll(async () => {
  expect(existsSync(path.join(root, 'dist', 'index.js')), "dist/ is missing: run 'npm run build' first").toBe(true)
  dir = await fs.mkdtemp(path.join(tmpdir(), 'cribcall-bench-smoke-'))
})
afterAll(async () => {
  if (dir !== '') await fs.rm(dir, { recursive: true, force: true })
})

function runSuite(out: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bench/run.mjs', '--smoke', '--runs', '1', '--out', out], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const timer = setTimeout(() => {
      child.kill('SIGTERM') // the orchestrator kills its workers on SIGTERM
      reject(new Error(`bench smoke run did not finish within 110 s\nstdout: ${stdout}\nstderr: ${stderr}`))
    }, 110_000)
    child.on('error', reject)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

it('the benchmark suite runs every workload for node:tls and cribcall-quic in smoke mode', async () => {
  const { code, stdout, stderr } = await runSuite(dir)
  expect(code, `exit code; stdout:\n${stdout}\nstderr:\n${stderr}`).toBe(0)

  const results = JSON.parse(await fs.readFile(path.join(dir, 'results.json'), 'utf8')) as Results
  expect(results.errors).toEqual([])
  expect(typeof results.machine.cpuModel).toBe('string')
  expect(results.machine.cpuCount).toBeGreaterThan(0)
  for (const wl of WORKLOADS) {
    for (const impl of IMPLS) {
      const block = results.workloads[wl]?.impls[impl]
      expect(block, `${wl}/${impl} missing`).toBeDefined()
      const b = block as ImplBlock
      expect(b.notRun, `${wl}/${impl} not run`).toBeUndefined()
      expect(b.errors, `${wl}/${impl} errors`).toEqual([])
      expect(b.runs.length, `${wl}/${impl} runs`).toBe(1)
      const metrics = Object.entries(b.runs[0] as Record<string, number>)
      expect(metrics.length, `${wl}/${impl} has no metrics`).toBeGreaterThan(0)
      for (const [name, value] of metrics) {
        expect(Number.isFinite(value), `${wl}/${impl} ${name} = ${value}`).toBe(true)
        expect(Number.isFinite(b.summary[name]?.median), `${wl}/${impl} summary of ${name}`).toBe(true)
      }
    }
  }

  const md = await fs.readFile(path.join(dir, 'results.md'), 'utf8')
  expect(md).toContain('| workload | node:tls | cribcall-quic | ours ÷ tls | goal (issue #10) |')
  expect(stdout).toContain('| workload | node:tls | cribcall-quic | ours ÷ tls | goal (issue #10) |')
}, 120_000)
