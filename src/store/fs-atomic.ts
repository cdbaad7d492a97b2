// Small filesystem helpers: atomic replace (temp file, fsync, rename, fsync dir) and an
// exclusive lock file that survives crashes (stale locks of dead processes are broken).
import { randomBytes } from 'node:crypto'
import { promises as fs, constants as fsc } from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { AbortError, CribcallError } from '../transport/errors.js'

/** A directory or file the process may not read or write (EACCES, EPERM, EROFS). */
export class PermissionError extends CribcallError {
  readonly path: string

  constructor(file: string, message: string, options?: ErrorOptions) {
    super('ERR_PERMISSION', message, options)
    this.name = 'PermissionError'
    this.path = file
  }
}

/** `e` as a {@link PermissionError} when it is a permission failure on `file`, else `e`. */
export function permissionFailure(e: unknown, file: string, doing: string): unknown {
  const code = (e as NodeJS.ErrnoException | null)?.code
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    const why = code === 'EROFS' ? 'read-only file system' : 'permission denied'
    return new PermissionError(file, `cannot ${doing} ${file}: ${why}`, { cause: e })
  }
  return e
}

/** Rejects with AbortError when `signal` has aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new AbortError(signal.reason)
}

/** Writes `data` to `file` atomically: readers see the old or the new content, never a mix. */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const dir = path.dirname(file)
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
  const handle = await fs.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, mode)
  try {
    await handle.writeFile(data)
    await handle.sync()
  } catch (e) {
    await handle.close().catch(() => undefined)
    await fs.rm(tmp, { force: true }).catch(() => undefined)
    throw e
  }
  await handle.close()
  try {
    await fs.rename(tmp, file)
  } catch (e) {
    await fs.rm(tmp, { force: true }).catch(() => undefined)
    throw e
  }
  await fsyncDir(dir)
}

export async function fsyncDir(dir: string): Promise<void> {
  try {
    const d = await fs.open(dir, fsc.O_RDONLY)
    try {
      await d.sync()
    } finally {
      await d.close()
    }
  } catch {
    // Some platforms (Windows) cannot open directories; rename is still atomic there.
  }
}

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export class LockTimeoutError extends CribcallError {
  constructor(message: string) {
    super('ERR_STORE_LOCKED', message)
    this.name = 'LockTimeoutError'
  }
}

/**
 * Runs `fn` while holding `<file>.lock` (created with O_EXCL). A lock left by a process
 * that no longer exists is removed. Gives up after `timeoutMs`.
 */
export function withFileLock<T>(file: string, fn: () => Promise<T>, timeoutMs = 5000): Promise<T> {
  // Callers in this process are serialized per file; the lock file serializes processes.
  const key = path.resolve(file)
  const prev = inProcess.get(key) ?? Promise.resolve()
  const run = prev.then(
    () => lockAcrossProcesses(key, fn, timeoutMs),
    () => lockAcrossProcesses(key, fn, timeoutMs),
  )
  const tail = run.then(
    () => undefined,
    () => undefined,
  )
  inProcess.set(key, tail)
  void tail.then(() => {
    if (inProcess.get(key) === tail) inProcess.delete(key)
  })
  return run
}

const inProcess = new Map<string, Promise<void>>()

async function lockAcrossProcesses<T>(file: string, fn: () => Promise<T>, timeoutMs: number): Promise<T> {
  const lock = `${file}.lock`
  const deadline = Date.now() + timeoutMs
  let delay = 2
  for (;;) {
    try {
      const h = await fs.open(lock, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600)
      await h.writeFile(String(process.pid))
      await h.close()
      break
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw permissionFailure(e, path.dirname(file), 'write in')
      const owner = Number.parseInt(await fs.readFile(lock, 'utf8').catch(() => ''), 10)
      if (owner === process.pid) {
        // Callers in this process are serialized, so a lock naming our pid is a leftover
        // of an earlier process that had the same pid: stale.
        await fs.rm(lock, { force: true })
        continue
      }
      if (!Number.isNaN(owner) && !pidAlive(owner)) {
        await fs.rm(lock, { force: true })
        continue
      }
      if (Number.isNaN(owner)) {
        // A lock file being written right now, or left empty by a crash: give it a moment.
        const st = await fs.stat(lock).catch(() => undefined)
        if (st !== undefined && Date.now() - st.mtimeMs > 2000) {
          await fs.rm(lock, { force: true })
          continue
        }
      }
      if (Date.now() > deadline) throw new LockTimeoutError(`could not lock ${file} within ${timeoutMs} ms`)
      await sleep(delay)
      delay = Math.min(delay * 2, 50)
    }
  }
  try {
    return await fn()
  } finally {
    await fs.rm(lock, { force: true }).catch(() => undefined)
  }
}

/** Creates `dir` with mode 0700 (and tightens an existing one). */
export async function ensurePrivateDir(dir: string): Promise<void> {
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 })
    if (process.platform !== 'win32') await fs.chmod(dir, 0o700)
  } catch (e) {
    throw permissionFailure(e, dir, 'create or secure the directory')
  }
}
