// Bundles the package entries after tsc: dist/index.js ('cribcall-quic') and
// dist/transport.js ('cribcall-quic/transport'), with everything they import from dist/,
// become two small ES modules over one shared chunk (dist/chunks/), so an import loads
// two or three files instead of ~40 — a fresh process's import costs less than half the
// time and memory (issue #10, start-up; `npm run bench -- --only import`). Both entries
// share the chunk, so every class (CribcallError, Endpoint, …) exists once whichever
// entry a program uses. The per-module files stay in dist/ for the other entry points
// (dist/cli/*, dist/schemas.js), which reach the library only through dist/index.js.
// Dependencies and Node built-ins stay imports; the addon is loaded lazily by
// src/transport/native.ts, not bundled. Run by `npm run build:ts`.
import { readdir, readFile, rename, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'rolldown'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'))
const dependencies = Object.keys(pkg.dependencies ?? {})
const dist = join(root, 'dist')
const ENTRIES = ['index', 'transport']
const tmp = join(root, 'dist', '.bundle')

await rm(tmp, { recursive: true, force: true })
await build({
  input: Object.fromEntries(ENTRIES.map((name) => [name, join(dist, `${name}.js`)])),
  platform: 'node',
  external: (id) => id.startsWith('node:') || dependencies.some((d) => id === d || id.startsWith(`${d}/`)),
  logLevel: 'warn',
  onLog(level, log) {
    // Any warning (an unresolved import, a circular dependency, an eval) fails the build.
    throw new Error(`bundle: ${level}: ${log.message}`)
  },
  output: { dir: tmp, entryFileNames: '[name].js', chunkFileNames: 'chunks/[name]-[hash].js', format: 'esm', sourcemap: true },
})
const chunks = await readdir(join(tmp, 'chunks')).catch(() => [])
for (const name of ENTRIES) {
  await rename(join(tmp, `${name}.js`), join(dist, `${name}.js`))
  // An entry that only re-exports the shared chunk has no map.
  await rm(join(dist, `${name}.js.map`), { force: true })
  await rename(join(tmp, `${name}.js.map`), join(dist, `${name}.js.map`)).catch((e) => {
    if (e.code !== 'ENOENT') throw e
  })
}
await rm(join(dist, 'chunks'), { recursive: true, force: true })
if (chunks.length > 0) await rename(join(tmp, 'chunks'), join(dist, 'chunks'))
const left = await readdir(tmp)
if (left.length > 0) throw new Error(`bundle: unexpected output ${left.join(', ')}`)
await rm(tmp, { recursive: true })
