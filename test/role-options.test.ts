// A Listener or Monitor given a broken identity is refused where it is given, with an
// InvalidArgumentError that names what is wrong, instead of failing at its first connection.
import { describe, expect, it } from 'vitest'
import { Endpoint, InvalidArgumentError, Listener, MemoryTrustStore, Monitor, generateIdentity } from '../src/index.js'
import { NUMERIC_OPTIONS } from '../src/transport/endpoint-options.js'

const good = generateIdentity()
const other = generateIdentity()
const broken: Array<[string, unknown, RegExp]> = [
  ['an empty object', {}, /deviceId must be a UUID/],
  ['null', null, /must be an Identity object/],
  ['no key', { ...good, keyPem: undefined }, /certPem and keyPem/],
  ['a bad fingerprint', { ...good, fingerprint: 'xyz' }, /fingerprint must be 64/],
  ["another certificate's fingerprint", { ...good, fingerprint: other.fingerprint }, /not the fingerprint of identity.certPem/],
  ['a certificate PEM that is not PEM', { ...good, certPem: 'not a certificate' }, /certPem is not a certificate/],
  ["a PEM that is not the fingerprint's certificate", { ...good, certPem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' }, /not the fingerprint of identity.certPem/],
]

describe('role options', () => {
  it.each(broken)('new Listener refuses %s as identity', (_what, identity, message) => {
    expect(() => new Listener({ identity: identity as never, trustStore: new MemoryTrustStore() })).toThrow(InvalidArgumentError)
    expect(() => new Listener({ identity: identity as never, trustStore: new MemoryTrustStore() })).toThrow(message)
  })

  it.each(broken)('Monitor.start refuses %s as identity', async (_what, identity, message) => {
    const started = Monitor.start({ identity: identity as never, trustStore: new MemoryTrustStore(), name: 'Nursery', host: '127.0.0.1', port: 0 })
    await expect(started).rejects.toThrow(InvalidArgumentError)
    await expect(Monitor.start({ identity: identity as never, trustStore: new MemoryTrustStore(), name: 'Nursery', host: '127.0.0.1', port: 0 })).rejects.toThrow(message)
  })

  it.each([
    ['undefined', undefined, /trustStore must be a TrustStore/],
    ['an empty object', {}, /trustStore is not a TrustStore: no list, get, findByFingerprint, put, touch, revoke, on, off/],
    ['a store without revoke', { list: () => [], get: () => undefined, findByFingerprint: () => undefined, put: async () => {}, touch: async () => {}, on: () => {}, off: () => {} }, /no revoke$/],
  ])('Listener and Monitor refuse %s as trustStore where it is given', async (_what, trustStore, message) => {
    expect(() => new Listener({ identity: good, trustStore: trustStore as never })).toThrow(message)
    await expect(Monitor.start({ identity: good, trustStore: trustStore as never, name: 'Nursery', host: '127.0.0.1', port: 0 })).rejects.toThrow(InvalidArgumentError)
  })

  it('a whole identity is accepted', async () => {
    const l = new Listener({ identity: good, trustStore: new MemoryTrustStore() })
    await l.close()
    const m = await Monitor.start({ identity: good, trustStore: new MemoryTrustStore(), name: 'Nursery', host: '127.0.0.1', port: 0 })
    await m.close()
  })
})

describe('Endpoint.bind options', () => {
  it.each(NUMERIC_OPTIONS.map(([name, min]) => [name, min] as const))('%s: an integer from %i up to 2^32 - 1, refused otherwise before anything is bound', async (name, min) => {
    for (const bad of [min - 1, min + 0.5, 2 ** 32, Number.NaN, '5']) {
      await expect(Endpoint.bind({ host: '127.0.0.1', port: 0, identity: good, [name]: bad })).rejects.toThrow(new RegExp(`^${name} must be an integer in ${min}\\.\\.4294967295`))
    }
    const ok = await Endpoint.bind({ host: '127.0.0.1', port: 0, identity: good, [name]: name === 'retryThreshold' ? 16 : Math.max(min, 1024) })
    await ok.close()
  })
})
