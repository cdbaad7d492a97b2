// On-demand installation of @matrixai/quic (js-quic: quiche driven from the JS main
// thread), the optional third implementation (--with-matrixai). It is not a dependency of
// the project: an exact version is installed once with npm into a cache directory beside
// the project (node_modules/.cache/, ignored by git) and loaded from there by
// bench/lib/impl-matrixai.mjs.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'

export const MATRIXAI_VERSION = '2.0.9'
const cache = fileURLToPath(new URL(`../../node_modules/.cache/bench-js-quic-${MATRIXAI_VERSION}/`, import.meta.url))

/** file: URL of an installed package's ESM entry. */
export const matrixaiEntry = (pkg) => pathToFileURL(`${cache}node_modules/${pkg}/dist/index.js`).href

/** Installs @matrixai/quic@MATRIXAI_VERSION into the cache unless it is there already. */
export async function ensureMatrixai() {
  if (existsSync(`${cache}node_modules/@matrixai/quic/package.json`)) return
  mkdirSync(cache, { recursive: true })
  console.log(`installing @matrixai/quic@${MATRIXAI_VERSION} into ${cache}`)
  execFileSync('npm', ['install', '--prefix', cache, '--no-save', '--no-audit', '--no-fund', `@matrixai/quic@${MATRIXAI_VERSION}`], {
    stdio: 'inherit',
  })
}
