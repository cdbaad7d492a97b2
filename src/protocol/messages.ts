// The CribCall v0.2 control messages (plus ERROR) at run time: the constants, the
// types, who may send what, and validation. The validators are compiled ahead of time
// from the TypeBox declarations in message-schemas.ts (`npm run schema` writes
// validators.generated.ts; a test fails when it is stale), so importing the library
// loads neither TypeBox nor Ajv.
import type { Static } from '@sinclair/typebox'
import { ErrorCode, MESSAGE_TYPES, type MessageType } from './message-constants.js'
import type * as S from './message-schemas.js'
import * as generated from './validators.generated.js'

export { ERROR_NAMES, ErrorCode, LIMITS, MESSAGE_TYPES, type ErrorName, type MessageType } from './message-constants.js'

/** A compiled validator (Ajv standalone code). */
interface Validator {
  (value: unknown): boolean
  errors?: Array<{ instancePath: string; keyword: string; message?: string; params: Record<string, unknown> }> | null
}

const VALIDATORS = generated as unknown as Record<MessageType | 'monitor_pair_v1', Validator>

/** @internal The compiled validator of the pairing QR payload. */
export const validateQrPayload: Validator = VALIDATORS.monitor_pair_v1

export type PairRequestMessage = Static<typeof S.PairRequest>
export type PairAcceptedMessage = Static<typeof S.PairAccepted>
export type PairRejectedMessage = Static<typeof S.PairRejected>
export type PinPairingInitMessage = Static<typeof S.PinPairingInit>
export type PinRequiredMessage = Static<typeof S.PinRequired>
export type PinSubmitMessage = Static<typeof S.PinSubmit>
export type PinTranscriptObject = Static<typeof S.PinTranscript>
export type NoiseEventMessage = Static<typeof S.NoiseEvent>
export type StartStreamRequestMessage = Static<typeof S.StartStreamRequest>
export type StartStreamResponseMessage = Static<typeof S.StartStreamResponse>
export type EndStreamMessage = Static<typeof S.EndStream>
export type PinStreamMessage = Static<typeof S.PinStream>
export type WebrtcOfferMessage = Static<typeof S.WebrtcOffer>
export type WebrtcAnswerMessage = Static<typeof S.WebrtcAnswer>
export type WebrtcIceMessage = Static<typeof S.WebrtcIce>
export type PingMessage = Static<typeof S.Ping>
export type PongMessage = Static<typeof S.Pong>
export type ErrorFrameMessage = Static<typeof S.ErrorMessage>

/** Every message of the control channel, discriminated by `type`. */
export type Message =
  | PairRequestMessage
  | PairAcceptedMessage
  | PairRejectedMessage
  | PinPairingInitMessage
  | PinRequiredMessage
  | PinSubmitMessage
  | NoiseEventMessage
  | StartStreamRequestMessage
  | StartStreamResponseMessage
  | EndStreamMessage
  | PinStreamMessage
  | WebrtcOfferMessage
  | WebrtcAnswerMessage
  | WebrtcIceMessage
  | PingMessage
  | PongMessage
  | ErrorFrameMessage

export type MessageOf<T extends MessageType> = Extract<Message, { type: T }>

export type Sender = 'listener' | 'monitor' | 'either'

/** Who may send each type, and which are pairing messages (allowed while untrusted). */
export const MESSAGE_RULES: Readonly<Record<MessageType, { readonly sender: Sender; readonly pairing: boolean }>> = Object.freeze({
  PAIR_REQUEST: { sender: 'listener', pairing: true },
  PAIR_ACCEPTED: { sender: 'monitor', pairing: true },
  PAIR_REJECTED: { sender: 'monitor', pairing: true },
  PIN_PAIRING_INIT: { sender: 'listener', pairing: true },
  PIN_REQUIRED: { sender: 'monitor', pairing: true },
  PIN_SUBMIT: { sender: 'listener', pairing: true },
  NOISE_EVENT: { sender: 'monitor', pairing: false },
  START_STREAM_REQUEST: { sender: 'listener', pairing: false },
  START_STREAM_RESPONSE: { sender: 'monitor', pairing: false },
  END_STREAM: { sender: 'either', pairing: false },
  PIN_STREAM: { sender: 'listener', pairing: false },
  WEBRTC_OFFER: { sender: 'either', pairing: false },
  WEBRTC_ANSWER: { sender: 'either', pairing: false },
  WEBRTC_ICE: { sender: 'either', pairing: false },
  PING: { sender: 'either', pairing: false },
  PONG: { sender: 'either', pairing: false },
  ERROR: { sender: 'either', pairing: true },
})

const TYPE_SET: ReadonlySet<string> = new Set(MESSAGE_TYPES)

export function isMessageType(t: string): t is MessageType {
  return TYPE_SET.has(t)
}

/** Checks a parsed message of a known type against its schema; returns null or a short reason. */
export function schemaError(type: MessageType, value: unknown): string | null {
  const v = VALIDATORS[type]
  if (v === undefined) return `no schema for ${type}`
  if (v(value)) {
    if (type === 'ERROR') {
      const e = value as ErrorFrameMessage
      if (ErrorCode[e.error] !== e.code) return `ERROR code ${e.code} does not match name ${e.error}`
    }
    return null
  }
  const first = v.errors?.[0]
  if (first === undefined) return 'invalid message'
  const where = first.instancePath === '' ? '' : ` at ${first.instancePath}`
  const extra =
    first.keyword === 'additionalProperties'
      ? ` '${String((first.params as { additionalProperty?: string }).additionalProperty)}'`
      : ''
  return `${type}${where}: ${first.message ?? first.keyword}${extra}`
}
