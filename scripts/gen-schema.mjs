// Writes schema/messages.schema.json and src/protocol/validators.generated.ts from the
// compiled TypeBox declarations (npm run schema; needs `npm run build:ts` first).
import { mkdirSync, writeFileSync } from 'node:fs'
import { MESSAGE_SCHEMAS, QrPayloadSchema, messagesJsonSchema } from '../dist/protocol/message-schemas.js'
import { validatorsSource } from './validators-source.mjs'

mkdirSync(new URL('../schema/', import.meta.url), { recursive: true })
writeFileSync(new URL('../schema/messages.schema.json', import.meta.url), JSON.stringify(messagesJsonSchema(), null, 2) + '\n')
console.log('wrote schema/messages.schema.json')
writeFileSync(new URL('../src/protocol/validators.generated.ts', import.meta.url), validatorsSource(MESSAGE_SCHEMAS, QrPayloadSchema))
console.log('wrote src/protocol/validators.generated.ts')
