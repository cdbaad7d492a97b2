// The README's quick start, run as written (transpiled, importing the built package).
import { spawn } from 'node:child_process'
import { promises as fs } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import ts from 'typescript'
import { expect, it } from 'vitest'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

it('the README quick start pairs by PIN, receives a NOISE_EVENT and ends cleanly', async () => {
  const readme = await fs.readFile(path.join(root, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('## Quick start'))
  const match = /```ts\n([\s\S]*?)```/.exec(section)
  expect(match).not.toBeNull()
  const code = (match as RegExpExecArray)[1] as string
  expect(code.split('\n').filter((l) => l.trim() !== '').length).toBeLessThan(25)
  const js = ts.transpileModule(code, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText
  const entry = pathToFileURL(path.join(root, 'dist', 'index.js')).href
  const dir = await fs.mkdtemp(path.join(tmpdir(), 'cribcall-readme-'))
  const file = path.join(dir, 'quickstart.mjs')
  await fs.writeFile(file, js.replace(`from 'cribcall-quic'`, `from '${entry}'`))
  const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  try {
    // It closes what it opened: the process exits by itself, with 0.
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the quick start did not exit within 15 s; stdout: ${out} stderr: ${err}`)), 15_000)
      child.on('exit', (c) => {
        clearTimeout(timer)
        resolve(c)
      })
    })
    expect(code, err).toBe(0)
  } finally {
    child.kill('SIGKILL')
    await fs.rm(dir, { recursive: true, force: true })
  }
  expect(out).toMatch(/^noise 42 /m)
}, 30_000)
