// Bundles the package entry after tsc: dist/index.js (and everything it imports from
// dist/) becomes one ES module, so `import('cribcall-quic')` loads one file instead of
// ~40 — a fresh process's import costs less than half the time and memory (issue #10,
// start-up; `npm run bench -- --only import`). The per-module files stay in dist/ for
// the other entry points (dist/cli/*, dist/schemas.js), which reach the library only
// through dist/index.js, so every class (CribcallError, Endpoint, …) exists once.
// Dependencies and Node built-ins stay imports; the addon is loaded lazily by
// src/transport/native.ts, not bundled. Run by `npm run build:ts`.
import { readdir, readFile, rename, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'rolldown'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'))
const dependencies = Object.keys(pkg.dependencies ?? {})
const entry = join(root, 'dist', 'index.js')
const tmp = join(root, 'dist', '.bundle')

await rm(tmp, { recursive: true, force: true })
await build({
  input: entry,
  platform: 'node',
  external: (id) => id.startsWith('node:') || dependencies.some((d) => id === d || id.startsWith(`${d}/`)),
  logLevel: 'warn',
  onLog(level, log) {
    // Any warning (an unresolved import, a circular dependency, an eval) fails the build.
    throw new Error(`bundle: ${level}: ${log.message}`)
  },
  output: { dir: tmp, entryFileNames: 'index.js', format: 'esm', sourcemap: true },
})
const written = (await readdir(tmp)).sort()
if (written.join(',') !== 'index.js,index.js.map') throw new Error(`bundle: expected one module, got ${written.join(', ')}`)
await rename(join(tmp, 'index.js'), entry)
await rename(join(tmp, 'index.js.map'), `${entry}.map`)
await rm(tmp, { recursive: true })
