// scripts/pack-check-cross.mjs, step 2: the static checks of a built .node (readelf
// reads any ELF machine): ELF machine, NEEDED, exported symbols, glibc floor or, for
// musl, no glibc symbol version and every libc symbol exported by musl's libc.
import { spawnSync } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { relative } from 'node:path'

import { MUSL_LOADER, fail, root, run } from './common.mjs'

const ALLOWED_EXPORT = /^(napi_register_module_v1|node_api_[A-Za-z0-9_]+)$/
const BORINGSSL_EXPORT = /^(SSL|CRYPTO)_/

/** The version musl's loader prints about itself (`ld-musl-x86_64.so.1` run bare). */
function muslVersion() {
  const r = spawnSync(MUSL_LOADER, [], { encoding: 'utf8' })
  return /Version ([0-9.]+)/.exec(`${r.stdout}${r.stderr}`)?.[1] ?? 'unknown version'
}

/** Checks the .node `file` of target `t`; returns what it found (for the report). Fails the run on a violation. */
export function staticChecks(t, file) {
  const result = { file: relative(root, file), sizeBytes: statSync(file).size }
  const header = run('readelf', ['-h', file])
  const machine = /Machine:\s+(.+)/.exec(header)?.[1].trim()
  const type = /Type:\s+(\S+)/.exec(header)?.[1]
  if (machine !== t.machine || type !== 'DYN') fail(`${result.file}: ${type} for ${machine}, expected a DYN for ${t.machine}`)
  result.machine = machine

  const needed = [...run('readelf', ['-d', file]).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1])
  result.needed = needed
  const badNeeded = needed.filter((n) => !t.needed.test(n))
  if (badNeeded.length) fail(`${result.file} needs ${badNeeded.join(', ')} (allowed: ${t.needed})`)
  if (t.key === 'musl' && !needed.some((n) => /^libc\.(so|musl-)/.test(n))) fail(`${result.file} does not link musl's libc (NEEDED: ${needed.join(', ')})`)

  // readelf --dyn-syms: "Num: Value Size Type Bind Vis Ndx Name[@version (n)]"
  const syms = run('readelf', ['-W', '--dyn-syms', file])
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => /^\d+:$/.test(f[0]) && f.length >= 8)
    .map((f) => ({ type: f[3], bind: f[4], ndx: f[6], name: f[7].split('@')[0], version: /@+([A-Za-z0-9_.]+)/.exec(f[7])?.[1] ?? null }))
  const defined = syms.filter((s) => s.ndx !== 'UND' && s.name && !['SECTION', 'FILE'].includes(s.type)).map((s) => s.name)
  result.exports = defined
  const leaked = defined.filter((s) => BORINGSSL_EXPORT.test(s))
  if (leaked.length) fail(`${result.file} exports BoringSSL symbols: ${leaked.slice(0, 5).join(', ')}`)
  const unexpected = defined.filter((s) => !ALLOWED_EXPORT.test(s))
  if (unexpected.length) fail(`${result.file} exports more than the N-API entry points: ${unexpected.slice(0, 10).join(', ')}`)

  const undefinedSyms = syms.filter((s) => s.ndx === 'UND' && s.name)
  const glibcRefs = undefinedSyms.filter((s) => s.version?.startsWith('GLIBC_'))
  const versionNeeds = [...run('readelf', ['-W', '-V', file]).matchAll(/Name: (GLIBC_[0-9.]+)/g)].map((m) => m[1])
  if (t.key === 'musl') {
    if (glibcRefs.length || versionNeeds.length) {
      fail(`${result.file} references glibc symbol versions: ${[...new Set([...versionNeeds, ...glibcRefs.map((s) => s.version)])].join(', ')}`)
    }
    result.glibcVersions = 'none'
    // Every strong undefined symbol must be one musl's libc exports (Debian's musl, 1.2.3:
    // musl only adds symbols, so a newer one, e.g. Alpine's, has them too).
    if (existsSync(MUSL_LOADER)) {
      const muslExports = new Set(
        run('readelf', ['-W', '--dyn-syms', MUSL_LOADER])
          .split('\n')
          .map((l) => l.trim().split(/\s+/))
          .filter((f) => /^\d+:$/.test(f[0]) && f.length >= 8 && f[6] !== 'UND')
          .map((f) => f[7].split('@')[0]),
      )
      // N-API (napi_*, node_api_*) comes from the node process that loads the addon.
      const fromNode = undefinedSyms.filter((s) => /^(napi|node_api)_/.test(s.name))
      const fromLibc = undefinedSyms.filter((s) => !fromNode.includes(s))
      const unresolved = fromLibc.filter((s) => s.bind !== 'WEAK' && !muslExports.has(s.name)).map((s) => s.name)
      if (unresolved.length) fail(`${result.file} needs symbols musl's libc does not have: ${unresolved.slice(0, 10).join(', ')}`)
      const weak = fromLibc.filter((s) => s.bind === 'WEAK').length
      result.undefinedResolvedByMusl = `${fromNode.length} undefined N-API symbols (from node); ${fromLibc.length} others${weak ? ` (${weak} weak)` : ''}, every strong one exported by ${MUSL_LOADER} (musl ${muslVersion()})`
    }
  } else {
    const cmp = (a, b) => a[0] - b[0] || a[1] - b[1] || (a[2] ?? 0) - (b[2] ?? 0)
    const ver = (s) => s.version.slice('GLIBC_'.length).split('.').map(Number)
    const strong = glibcRefs.filter((s) => s.bind !== 'WEAK')
    const floor = strong.map(ver).sort(cmp).at(-1)
    result.glibcFloor = floor ? `GLIBC_${floor.join('.')}` : null
    result.glibcFloorNeededBy = floor ? [...new Set(strong.filter((s) => cmp(ver(s), floor) === 0).map((s) => s.name))] : []
  }
  return result
}
