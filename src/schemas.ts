// `cribcall-quic/schemas`: the TypeBox declarations of every control message and of
// the pairing QR payload, and the published JSON Schema, for applications that want to
// validate or generate messages themselves. Kept out of the main entry point so that
// importing the library loads neither TypeBox nor Ajv (the library validates with
// validators compiled ahead of time from these same declarations).
export * from './protocol/message-schemas.js'
