// Trust store: the devices this device is paired with. A TrustStore interface, an
// in-memory implementation and the file-backed default (JSON, atomic replace, a lock
// against concurrent writers in other processes).
import { promises as fs, watch } from 'node:fs'
import path from 'node:path'
import { FINGERPRINT_RE as FP_RE, STORED_DEVICE_ID_RE as UUID_RE } from '../base/formats.js'
import { TypedEmitter } from '../transport/emitter.js'
import { CribcallError, InvalidArgumentError } from '../transport/errors.js'
import { ensurePrivateDir, permissionFailure, PermissionError, throwIfAborted, withFileLock, writeFileAtomic } from './fs-atomic.js'

export interface TrustEntry {
  readonly deviceId: string
  readonly name: string
  /** SHA-256 fingerprint of the device's certificate (64 lowercase hex). */
  readonly fingerprint: string
  /** base64 SPKI DER of its public key. */
  readonly publicKey: string
  /** What the paired device is: a listener (in a monitor's store) or a monitor. */
  readonly role: 'listener' | 'monitor'
  /** ms since the Unix epoch. */
  readonly pairedAt: number
  readonly lastSeenAt?: number
  /** `host:port` (IPv6 in brackets) last seen. */
  readonly lastAddress?: string
}

export type TrustStoreEvents = {
  /** The set of entries changed (add, update, revoke, or a reload saw another writer's change). */
  change: [entries: readonly TrustEntry[]]
  /** An entry was revoked; holders of live channels to it must close them. */
  revoked: [entry: TrustEntry]
}

/** What roles need from a trust store. Implementations must emit 'revoked' and 'change'. */
export interface TrustStore {
  list(): readonly TrustEntry[]
  get(deviceId: string): TrustEntry | undefined
  findByFingerprint(fingerprint: string): TrustEntry | undefined
  /** Adds or replaces the entry with this deviceId. Aborting `signal` before the change is written rejects with AbortError. */
  put(entry: TrustEntry, options?: { readonly signal?: AbortSignal }): Promise<void>
  /** Updates lastSeenAt/lastAddress (no-op for an unknown device). Aborting `signal` as for put. */
  touch(deviceId: string, seen: { lastSeenAt: number; lastAddress?: string }, options?: { readonly signal?: AbortSignal }): Promise<void>
  /**
   * Removes the entry and emits 'revoked'. Returns the removed entry. Aborting `signal`
   * before the change is written rejects with AbortError (nothing changed).
   */
  revoke(deviceId: string, options?: { readonly signal?: AbortSignal }): Promise<TrustEntry | undefined>
  on<K extends keyof TrustStoreEvents>(event: K, listener: (...args: TrustStoreEvents[K]) => unknown): unknown
  off<K extends keyof TrustStoreEvents>(event: K, listener: (...args: TrustStoreEvents[K]) => unknown): unknown
}

const TRUST_STORE_METHODS = ['list', 'get', 'findByFingerprint', 'put', 'touch', 'revoke', 'on', 'off'] as const

/** Throws InvalidArgumentError unless `store` has every method of {@link TrustStore}. */
export function checkTrustStore(store: unknown): asserts store is TrustStore {
  if (store === null || typeof store !== 'object') throw new InvalidArgumentError('trustStore must be a TrustStore (e.g. FileTrustStore or MemoryTrustStore)')
  const missing = TRUST_STORE_METHODS.filter((m) => typeof (store as Record<string, unknown>)[m] !== 'function')
  if (missing.length > 0) throw new InvalidArgumentError(`trustStore is not a TrustStore: no ${missing.join(', ')}`)
}

export class TrustStoreError extends CribcallError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_TRUST_STORE', message, options)
    this.name = 'TrustStoreError'
  }
}

const B64_RE = /^[A-Za-z0-9+/]+={0,2}$/

/** Validates one entry; returns a frozen copy with only the known members. */
export function checkTrustEntry(e: unknown): TrustEntry {
  if (e === null || typeof e !== 'object') throw new InvalidArgumentError('trust entry must be an object')
  const r = e as Record<string, unknown>
  const str = (k: string, re?: RegExp, max = 256): string => {
    const v = r[k]
    if (typeof v !== 'string' || v.length === 0 || v.length > max || (re !== undefined && !re.test(v))) {
      throw new InvalidArgumentError(`trust entry: invalid ${k}`)
    }
    return v
  }
  const time = (k: string, optional: boolean): number | undefined => {
    const v = r[k]
    if (v === undefined && optional) return undefined
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new InvalidArgumentError(`trust entry: invalid ${k}`)
    return v
  }
  const role = r.role
  if (role !== 'listener' && role !== 'monitor') throw new InvalidArgumentError('trust entry: role must be listener or monitor')
  const lastSeenAt = time('lastSeenAt', true)
  const lastAddress = r.lastAddress === undefined ? undefined : str('lastAddress', undefined, 300)
  return Object.freeze({
    deviceId: str('deviceId', UUID_RE, 36),
    name: str('name', undefined, 64),
    fingerprint: str('fingerprint', FP_RE, 64),
    publicKey: str('publicKey', B64_RE, 1024),
    role,
    pairedAt: time('pairedAt', false) as number,
    ...(lastSeenAt === undefined ? {} : { lastSeenAt }),
    ...(lastAddress === undefined ? {} : { lastAddress }),
  })
}

abstract class BaseTrustStore extends TypedEmitter<TrustStoreEvents> implements TrustStore {
  protected entries = new Map<string, TrustEntry>()

  list(): readonly TrustEntry[] {
    return [...this.entries.values()]
  }

  get(deviceId: string): TrustEntry | undefined {
    return this.entries.get(deviceId)
  }

  findByFingerprint(fingerprint: string): TrustEntry | undefined {
    for (const e of this.entries.values()) if (e.fingerprint === fingerprint) return e
    return undefined
  }

  /** Applies `mutate` to the entries and persists; returns mutate's result. */
  protected abstract commit<T>(mutate: (entries: Map<string, TrustEntry>) => T): Promise<T>

  async put(entry: TrustEntry, options: { readonly signal?: AbortSignal } = {}): Promise<void> {
    const e = checkTrustEntry(entry)
    throwIfAborted(options.signal)
    await this.commit((m) => {
      throwIfAborted(options.signal)
      // A fingerprint identifies one device: drop any other entry holding it.
      for (const [id, old] of m) if (old.fingerprint === e.fingerprint && id !== e.deviceId) m.delete(id)
      m.set(e.deviceId, e)
    })
    this.changed()
  }

  async touch(deviceId: string, seen: { lastSeenAt: number; lastAddress?: string }, options: { readonly signal?: AbortSignal } = {}): Promise<void> {
    throwIfAborted(options.signal)
    const updated = await this.commit((m) => {
      throwIfAborted(options.signal)
      const old = m.get(deviceId)
      if (old === undefined) return false
      m.set(deviceId, checkTrustEntry({ ...old, ...seen }))
      return true
    })
    if (updated) this.changed()
  }

  async revoke(deviceId: string, options: { readonly signal?: AbortSignal } = {}): Promise<TrustEntry | undefined> {
    throwIfAborted(options.signal)
    const removed = await this.commit((m) => {
      throwIfAborted(options.signal)
      const old = m.get(deviceId)
      m.delete(deviceId)
      return old
    })
    if (removed !== undefined) {
      this.emitSafe('revoked', [removed], (e) => process.emitWarning(`cribcall-quic: a 'revoked' listener failed: ${String(e)}`))
      this.changed()
    }
    return removed
  }

  protected changed(): void {
    this.emitSafe('change', [this.list()], (e) => process.emitWarning(`cribcall-quic: a 'change' listener failed: ${String(e)}`))
  }
}

/** A trust store that lives in memory only (tests, ephemeral devices). */
export class MemoryTrustStore extends BaseTrustStore {
  constructor(initial: Iterable<TrustEntry> = []) {
    super()
    for (const e of initial) {
      const c = checkTrustEntry(e)
      this.entries.set(c.deviceId, c)
    }
  }

  protected async commit<T>(mutate: (entries: Map<string, TrustEntry>) => T): Promise<T> {
    return mutate(this.entries)
  }
}

interface StoreFile {
  version: 1
  entries: TrustEntry[]
}

function parseStoreFile(text: string, file: string): Map<string, TrustEntry> {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (e) {
    throw new TrustStoreError(`trust store ${file} is not valid JSON; it was not modified`, { cause: e })
  }
  const d = doc as Partial<StoreFile>
  if (d === null || typeof d !== 'object' || d.version !== 1 || !Array.isArray(d.entries)) {
    throw new TrustStoreError(`trust store ${file} has an unknown format; it was not modified`)
  }
  const m = new Map<string, TrustEntry>()
  for (const raw of d.entries) {
    try {
      const e = checkTrustEntry(raw)
      m.set(e.deviceId, e)
    } catch (err) {
      throw new TrustStoreError(`trust store ${file} holds an invalid entry; it was not modified`, { cause: err })
    }
  }
  return m
}

/**
 * The default trust store: one JSON file (mode 0600, in a 0700 directory). Every write
 * re-reads the file under an exclusive lock, applies the change and replaces the file
 * atomically (temporary file, fsync, rename), so concurrent writers in several
 * processes lose nothing and a crash never leaves a partial file.
 */
export class FileTrustStore extends BaseTrustStore {
  readonly path: string

  private constructor(file: string) {
    super()
    this.path = file
  }

  /**
   * Opens (and creates, with its 0700 directory) the store in `file`. `readOnly`: the
   * directory is neither created nor re-secured (for tools that only list), and a
   * missing file reads as an empty store. Aborting `signal` rejects with AbortError.
   */
  static async open(file: string, options: { readonly signal?: AbortSignal; readonly readOnly?: boolean } = {}): Promise<FileTrustStore> {
    if (typeof file !== 'string' || file.length === 0) throw new InvalidArgumentError('trust store path must be a non-empty string')
    throwIfAborted(options.signal)
    const store = new FileTrustStore(path.resolve(file))
    if (options.readOnly !== true) await ensurePrivateDir(path.dirname(store.path))
    throwIfAborted(options.signal)
    await store.reload()
    return store
  }

  /**
   * Re-reads the file (another process may have written it). Entries that disappeared
   * are reported as 'revoked' (another process revoked them).
   */
  async reload(options: { readonly signal?: AbortSignal } = {}): Promise<void> {
    throwIfAborted(options.signal)
    const next = await this.#read()
    throwIfAborted(options.signal)
    const before = JSON.stringify([...this.entries.values()])
    const removed = [...this.entries.values()].filter((e) => !next.has(e.deviceId) || next.get(e.deviceId)?.fingerprint !== e.fingerprint)
    this.entries = next
    for (const e of removed) {
      this.emitSafe('revoked', [e], (err) => process.emitWarning(`cribcall-quic: a 'revoked' listener failed: ${String(err)}`))
    }
    if (JSON.stringify([...next.values()]) !== before) this.changed()
  }

  /**
   * Watches the file for changes by other processes (e.g. `cribcall-agent trust revoke`
   * while a monitor runs) and reloads. Returns a function that stops watching.
   */
  watch(onError?: (e: unknown) => void): () => void {
    const dir = path.dirname(this.path)
    const base = path.basename(this.path)
    let timer: NodeJS.Timeout | undefined
    let reloading = Promise.resolve()
    const schedule = (): void => {
      if (timer !== undefined) clearTimeout(timer)
      timer = setTimeout(() => {
        timer = undefined
        reloading = reloading.then(() => this.reload()).catch((e: unknown) => onError?.(e))
      }, 50)
      timer.unref()
    }
    const watcher = watch(dir, { persistent: false }, (_event, filename) => {
      if (filename === null || filename === base) schedule()
    })
    watcher.on('error', (e) => onError?.(e))
    return () => {
      if (timer !== undefined) clearTimeout(timer)
      watcher.close()
    }
  }

  async #read(): Promise<Map<string, TrustEntry>> {
    let text: string
    try {
      text = await fs.readFile(this.path, 'utf8')
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Map()
      const denied = permissionFailure(e, this.path, 'read the trust store')
      if (denied instanceof PermissionError) throw denied
      throw new TrustStoreError(`cannot read trust store ${this.path}`, { cause: e })
    }
    return parseStoreFile(text, this.path)
  }

  protected async commit<T>(mutate: (entries: Map<string, TrustEntry>) => T): Promise<T> {
    return withFileLock(this.path, async () => {
      const current = await this.#read()
      const result = mutate(current)
      const doc: StoreFile = { version: 1, entries: [...current.values()] }
      await writeFileAtomic(this.path, JSON.stringify(doc, null, 2) + '\n', 0o600)
      this.entries = current
      return result
    })
  }
}
