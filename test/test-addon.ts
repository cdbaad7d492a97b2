/**
 * The test-only hooks and oracles of the native addon, reached here and nowhere else.
 *
 * They are compiled only into the test build (cargo feature `test-hooks`, `npm run
 * build:native:test`, target/test-addon/), which vitest.config.ts makes the napi loader
 * (index.js) load through NAPI_RS_NATIVE_LIBRARY_PATH; the production addon and its
 * typings have none of them, so src/ cannot use them. Importing this module fails — it
 * never skips — when the loaded addon lacks them.
 */
import { createRequire } from 'node:module'
import { NativeEndpoint } from '../index.js'

/** The Endpoint methods only the test build has. */
export interface NativeEndpointTestHooks {
  /** Queues raw bytes on the control stream without framing. */
  _sendRaw(connId: number, bytes: Uint8Array): number
  /** Makes the IO thread panic (contained, reported as ERR_INTERNAL). */
  _injectPanic(): void
}

/** The functions only the test build exports. */
interface TestAddonExports {
  /** RFC 8785 bytes of a flat string object, by the Rust canonicalizer. */
  canonicalStringObject(obj: Record<string, string>): Buffer
}

function loadTestAddon(): TestAddonExports {
  const file = process.env.NAPI_RS_NATIVE_LIBRARY_PATH
  if (!file) {
    throw new Error('test-addon: NAPI_RS_NATIVE_LIBRARY_PATH is not set; run the tests with vitest (vitest.config.ts sets it to the test build)')
  }
  // The same module object the loader got: Node caches a .node file by its path.
  const addon = createRequire(import.meta.url)(file) as Partial<TestAddonExports> & { NativeEndpoint?: unknown }
  const hooks = NativeEndpoint.prototype as Partial<NativeEndpointTestHooks>
  const missing = [
    addon.NativeEndpoint === NativeEndpoint ? null : `index.js did not load ${file}`,
    typeof addon.canonicalStringObject === 'function' ? null : 'canonicalStringObject',
    typeof hooks._sendRaw === 'function' ? null : 'NativeEndpoint._sendRaw',
    typeof hooks._injectPanic === 'function' ? null : 'NativeEndpoint._injectPanic',
  ].filter((m) => m !== null)
  if (missing.length > 0) {
    throw new Error(`test-addon: the loaded addon lacks the test hooks (${missing.join(', ')}); build it with \`npm run build:native:test\``)
  }
  return addon as TestAddonExports
}

const testAddon = loadTestAddon()

/** The Rust JCS of a flat string object (to prove TS and Rust agree byte for byte). */
export function canonicalStringObject(obj: Record<string, string>): Buffer {
  return testAddon.canonicalStringObject(obj)
}

/** `endpoint` with the test build's hooks typed (checked present when this module loaded). */
export function withTestHooks<T extends NativeEndpoint>(endpoint: T): T & NativeEndpointTestHooks {
  return endpoint as T & NativeEndpointTestHooks
}
