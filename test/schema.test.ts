// schema/messages.schema.json and src/protocol/validators.generated.ts are generated
// from the same TypeBox declarations (npm run schema); these fail when either is stale.
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { expect, it } from 'vitest'
import { MESSAGE_TYPES } from '../src/protocol/messages.js'
import { MESSAGE_SCHEMAS, QrPayloadSchema, messagesJsonSchema } from '../src/schemas.js'
// @ts-expect-error -- a plain .mjs build script without type declarations
import { validatorsSource } from '../scripts/validators-source.mjs'

const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'schema', 'messages.schema.json')

it('the published JSON Schema is up to date (npm run schema)', async () => {
  const committed = JSON.parse(await fs.readFile(file, 'utf8')) as unknown
  expect(committed).toEqual(messagesJsonSchema())
})

it('the published JSON Schema validates like the library does', () => {
  const ajv = new Ajv2020({ strict: false })
  const validate = ajv.compile(messagesJsonSchema())
  expect(MESSAGE_TYPES).toHaveLength(17)
  expect(validate({ type: 'PING', timestamp: 123 })).toBe(true)
  expect(validate({ type: 'PING', timestamp: 1.5 })).toBe(false)
  expect(validate({ type: 'PING', timestamp: 1, extra: true })).toBe(false)
  expect(validate({ type: 'NOISE_EVENT', monitorId: '6f9619ff-8b86-4011-b42d-00c04fc964ff', timestamp: 1, peakLevel: 101 })).toBe(false)
  expect(validate({ type: 'NOISE_EVENT', monitorId: '6f9619ff-8b86-4011-b42d-00c04fc964ff', timestamp: 1, peakLevel: 100 })).toBe(true)
  expect(validate({ type: 'NOPE' })).toBe(false)
})

it('the compiled validators are up to date (npm run schema)', async () => {
  const generated = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'protocol', 'validators.generated.ts')
  const committed = await fs.readFile(generated, 'utf8')
  expect(committed).toBe((validatorsSource as (m: unknown, q: unknown) => string)(MESSAGE_SCHEMAS, QrPayloadSchema))
})

it('importing the library loads neither TypeBox nor Ajv', async () => {
  const { execFileSync } = await import('node:child_process')
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
  const hooks = new URL('./fixtures/forbid-imports.mjs', import.meta.url).href
  const script = `
    import { register } from 'node:module'
    register(${JSON.stringify(hooks)})
    const lib = await import('./dist/index.js')
    // Validation works without them.
    console.log(lib.schemaError('PING', { type: 'PING', timestamp: 1 }) === null && lib.schemaError('PING', { type: 'PING' }) !== null)
  `
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' })
  expect(out.trim()).toBe('true')
})
