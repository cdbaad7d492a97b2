import { existsSync, readdirSync, statSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

const root = path.dirname(fileURLToPath(import.meta.url))

/**
 * The tests run against the test build of the addon (`npm run build:native:test`: the
 * cargo feature `test-hooks` adds `_sendRaw`, `_injectPanic` and `canonicalStringObject`,
 * which the production addon does not have). The napi loader (index.js) loads the file
 * NAPI_RS_NATIVE_LIBRARY_PATH names instead of the production .node; child processes the
 * tests start inherit it.
 */
const TEST_ADDON = path.join(root, 'target', 'test-addon', 'cribcall-quic.node')

/** The newest Rust source or manifest of the addon, and its mtime. */
function newestNativeSource(): { file: string; mtimeMs: number } {
  let newest = { file: '', mtimeMs: 0 }
  const consider = (file: string): void => {
    const mtimeMs = statSync(file).mtimeMs
    if (mtimeMs > newest.mtimeMs) newest = { file, mtimeMs }
  }
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name)
      if (entry.isDirectory()) walk(file)
      else if (entry.name.endsWith('.rs')) consider(file)
    }
  }
  for (const dir of ['native/src', 'native/core/src', 'native/driver/src']) walk(path.join(root, dir))
  for (const file of ['Cargo.toml', 'Cargo.lock', 'native/Cargo.toml', 'native/build.rs', 'native/core/Cargo.toml', 'native/driver/Cargo.toml']) {
    consider(path.join(root, file))
  }
  return newest
}

if (!existsSync(TEST_ADDON)) {
  throw new Error(`vitest: the test build of the native addon is missing (${TEST_ADDON}); build it with \`npm run build:native:test\` (npm test does)`)
}
const source = newestNativeSource()
if (source.mtimeMs > statSync(TEST_ADDON).mtimeMs) {
  throw new Error(
    `vitest: the test build of the native addon (${path.relative(root, TEST_ADDON)}) is older than ${path.relative(root, source.file)}; ` +
      'rebuild it with `npm run build:native:test` (npm test does)',
  )
}

export default defineConfig({
  test: {
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    env: { NAPI_RS_NATIVE_LIBRARY_PATH: TEST_ADDON },
  },
})
