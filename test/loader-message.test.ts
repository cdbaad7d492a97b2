// The package installed without its per-platform package (optional dependencies omitted,
// or npm's optional-dependency bug) says which package is missing and how to get it,
// instead of the napi-rs generator's "npm has a bug" text (scripts/loader-message.mjs).
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

it('a missing platform package is named, with the command that installs it', () => {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { name: string; version: string }
  // The loader alone, as in node_modules/cribcall-quic without node_modules/cribcall-quic-<platform>.
  const dir = mkdtempSync(path.join(tmpdir(), 'cribcall-loader-'))
  try {
    copyFileSync(path.join(root, 'index.js'), path.join(dir, 'index.js'))
    copyFileSync(path.join(root, 'package.json'), path.join(dir, 'package.json'))
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', `import(${JSON.stringify(path.join(dir, 'index.js'))}).then(() => console.log('loaded'), (e) => { console.log(e.message); process.exitCode = 1 })`], { encoding: 'utf8', env: { ...process.env, NAPI_RS_NATIVE_LIBRARY_PATH: '' } })
    expect(r.status).toBe(1)
    expect(r.stdout).not.toMatch(/npm has a bug/)
    const abi = process.platform === 'linux' ? '-gnu' : process.platform === 'win32' ? '-msvc' : ''
    const name = `${pkg.name}-${process.platform}-${process.arch}${abi}`
    expect(r.stdout).toContain(`the package ${name} is not installed`)
    expect(r.stdout).toContain(`npm install ${name}@${pkg.version}`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

it('the committed loader carries the patch (npm run build reapplies it after napi build)', () => {
  const loader = readFileSync(path.join(root, 'index.js'), 'utf8')
  expect(loader).toContain('// cribcall-quic: scripts/loader-message.mjs')
  expect(loader).toContain('new Error(__cribcallMissingBinding())')
})
