// scripts/pack-check-cross.mjs, steps 3 and 4: pack the main and the platform package
// (as pack:check stages them), install them as a user on that platform would get them,
// and run the probe and the pack:check consumers with that platform's Node.js.
import { spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'

import { CONSUMERS, consumerOk, packMain, packPlatform, pathWithoutRust, prepareConsumers, report, runWithTimeout } from '../pack-check/shared.mjs'
import { nodeFileOf } from './build.mjs'
import { MUSL_LOADER, binaryName, fail, npmCmd, pkg, root, run, step } from './common.mjs'

const QEMU_CONSUMER_TIMEOUT_MS = 180_000
const MUSL_CONSUMER_TIMEOUT_MS = 30_000

/** The main package exactly as pack:check stages it: `npm pack`'s files and the optionalDependencies `napi prepublish -t npm` adds. */
export function packMainTarball(work, tarballs) {
  try {
    const { tarball, packed } = packMain(root, work, tarballs, run)
    console.log(`   ${packed.filename}: ${packed.entryCount} files`)
    return tarball
  } catch (e) {
    fail(e.message)
  }
}

/** The platform package npm/<abi> with the cross-built .node of target `t`. */
export function packPlatformTarball(t, work, tarballs) {
  try {
    const { tarball, name, packed, names } = packPlatform(root, work, tarballs, t.abi, nodeFileOf(t), run)
    console.log(`   ${packed.filename}: ${names.join(', ')}, ${(packed.size / 1024 / 1024).toFixed(1)} MiB packed`)
    return { tarball, name }
  } catch (e) {
    fail(e.message)
  }
}

/** A fresh project with the main package and the platform package installed as on that platform (npm --cpu/--os/--libc), the probe and the consumers. */
export function installProject(t, work, mainTarball, platform) {
  const project = join(work, `consumer-${t.abi}`)
  mkdirSync(project)
  // The platform package as an optional dependency, as the main package lists it: npm
  // installs it only because --cpu/--os/--libc say this is that platform (no --force).
  writeFileSync(
    join(project, 'package.json'),
    `${JSON.stringify(
      {
        name: `cribcall-quic-pack-check-${t.abi}`,
        version: '0.0.0',
        private: true,
        dependencies: { [pkg.name]: `file:${mainTarball}` },
        optionalDependencies: { [platform.name]: `file:${platform.tarball}` },
      },
      null,
      2,
    )}\n`,
  )
  step(`npm install ${t.npmFlags.join(' ')} (main package + ${platform.name}) into a fresh project`)
  run(npmCmd, ['install', '--no-audit', '--no-fund', '--ignore-scripts', ...t.npmFlags], { cwd: project })
  const installedNode = join(project, 'node_modules', platform.name, `${binaryName}.${t.abi}.node`)
  if (!existsSync(installedNode)) fail(`npm did not install ${platform.name} with ${t.npmFlags.join(' ')}`)
  const others = readdirSync(join(project, 'node_modules')).filter((d) => d.startsWith(`${pkg.name}-`) && d !== platform.name)
  if (others.length) fail(`npm installed other platform packages too: ${others.join(', ')}`)

  copyFileSync(join(root, 'scripts', 'pack-check-cross', 'probe.mjs'), join(project, 'probe.mjs'))
  // The consumers; the TypeScript one compiled (by this machine's tsc) against the installed types.
  try {
    prepareConsumers(root, project, run)
  } catch (e) {
    fail(e.message)
  }
  return { project, installedNode }
}

/**
 * A bin directory whose `node` runs the foreign Node.js (through qemu for arm64), and a
 * PATH with it and the system directories but no cargo/rustc.
 */
function foreignPath(dir, nodeCommand) {
  const bin = join(dir, 'bin')
  mkdirSync(bin, { recursive: true })
  const quoted = nodeCommand.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ')
  writeFileSync(join(bin, 'node'), `#!/bin/sh\nexec ${quoted} "$@"\n`)
  chmodSync(join(bin, 'node'), 0o755)
  try {
    return { node: join(bin, 'node'), PATH: pathWithoutRust(bin) }
  } catch (e) {
    fail(e.message)
  }
}

function runScript(argv, { cwd, PATH, timeoutMs, extraEnv = {} }) {
  const env = { PATH, HOME: process.env.HOME ?? cwd, LANG: 'C.UTF-8', ...extraEnv }
  return runWithTimeout(argv, { cwd, env, timeoutMs, label: 'pack:check:cross' })
}

/**
 * For musl: run in a private mount namespace with musl's ldd on /usr/bin/ldd, which is
 * where napi-rs's loader looks first to tell musl from glibc. Returns the argv prefix, or
 * null when unshare/mount are not allowed (then the loader is pointed at the musl .node
 * with NAPI_RS_NATIVE_LIBRARY_PATH instead, and the report says so).
 */
function muslNamespace(work) {
  const ldd = join(work, 'musl-ldd')
  writeFileSync(ldd, `#!/bin/sh\n# musl's ldd, as on Alpine\nexec ${MUSL_LOADER} --list "$@"\n`)
  chmodSync(ldd, 0o755)
  const prefix = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /usr/bin/ldd && exec "$@"', ldd]
  const probe = spawnSync(prefix[0], [...prefix.slice(1), 'sh', '-c', 'grep -q musl /usr/bin/ldd'], { stdio: 'ignore' })
  return probe.status === 0 ? prefix : null
}

/** Runs the probe and the consumers in `project` with `nodeCommand` (the foreign Node.js); returns what ran and how. */
export async function runConsumers(t, project, installedNode, nodeCommand, work) {
  const { node, PATH } = foreignPath(join(work, `run-${t.abi}`), nodeCommand)
  let prefix = []
  let extraEnv = {}
  let how
  if (t.key === 'musl') {
    const ns = muslNamespace(work)
    if (ns) {
      prefix = ns
      how = "napi-rs's loader chose the package itself (/usr/bin/ldd is musl's in a private mount namespace)"
    } else {
      extraEnv = { NAPI_RS_NATIVE_LIBRARY_PATH: installedNode }
      how = 'no mount namespace (unshare -m refused): the loader was pointed at the installed musl .node with NAPI_RS_NATIVE_LIBRARY_PATH'
    }
  } else {
    how = "napi-rs's loader chose the package itself (process.arch is arm64 under qemu)"
  }
  const timeoutMs = t.key === 'arm64' ? QEMU_CONSUMER_TIMEOUT_MS : MUSL_CONSUMER_TIMEOUT_MS

  const version = await runScript([...prefix, node, '--version'], { cwd: project, PATH, timeoutMs, extraEnv })
  if (version.code !== 0) fail(`the ${t.abi} Node.js does not start: ${version.stderr || version.code}`)
  step(`consumers with the ${t.abi} node ${version.stdout} (${nodeCommand.join(' ')}); ${how}`)

  const results = []
  const probe = await runScript([...prefix, node, 'probe.mjs'], { cwd: project, PATH, timeoutMs, extraEnv })
  let probeInfo = null
  try {
    probeInfo = JSON.parse(probe.stdout.split('\n').at(-1))
  } catch {}
  const expectArch = t.key === 'arm64' ? 'arm64' : 'x64'
  const addonOk = probeInfo?.addons?.length === 1 && probeInfo.addons[0].endsWith(`/node_modules/${pkg.name}-${t.abi}/${binaryName}.${t.abi}.node`)
  const libcOk = t.key === 'musl' ? probeInfo?.glibcRuntime === null && probeInfo.loader.some((l) => l.includes('ld-musl')) : !!probeInfo?.glibcRuntime
  const probeOk = probe.code === 0 && probeInfo?.arch === expectArch && addonOk && libcOk && probeInfo.generatedIdentity
  results.push({ consumer: 'probe.mjs', ok: probeOk, ...probe, info: probeInfo })
  const probeText = probeOk
    ? `probe.mjs: arch ${probeInfo.arch}, ${t.key === 'musl' ? `musl (no glibc), loader ${probeInfo.loader.join(', ')}` : `glibc ${probeInfo.glibcRuntime}`}; mapped ${relative(project, probeInfo.addons[0])}`
    : undefined
  report('probe.mjs', probeOk, probe, probeText)
  for (const consumer of CONSUMERS) {
    const r = await runScript([...prefix, node, consumer], { cwd: project, PATH, timeoutMs, extraEnv })
    const ok = consumerOk(consumer, r)
    results.push({ consumer, ok, ...r })
    report(consumer, ok, r)
  }
  return { node: version.stdout, nodeCommand, how, results }
}
