// Writes schema/messages.schema.json from the compiled message declarations (npm run schema).
import { mkdirSync, writeFileSync } from 'node:fs'
import { messagesJsonSchema } from '../dist/protocol/messages.js'

mkdirSync(new URL('../schema/', import.meta.url), { recursive: true })
writeFileSync(new URL('../schema/messages.schema.json', import.meta.url), JSON.stringify(messagesJsonSchema(), null, 2) + '\n')
console.log('wrote schema/messages.schema.json')
