// schema/messages.schema.json is generated from the same TypeBox declarations the
// validators are compiled from; this fails when the committed file is stale.
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { expect, it } from 'vitest'
import { MESSAGE_TYPES, messagesJsonSchema } from '../src/protocol/messages.js'

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
