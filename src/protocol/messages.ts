// The CribCall v0.2 control messages (plus ERROR), declared once with TypeBox.
// The same declarations give the TypeScript types, the runtime validators (Ajv,
// compiled once) and the published JSON Schema (schema/messages.schema.json).
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { Ajv, type ValidateFunction } from 'ajv'

/** Limits stated in SPEC.md. String lengths count Unicode code points (JSON Schema semantics). */
export const LIMITS = Object.freeze({
  nameMax: 64,
  publicKeyMax: 1024,
  sessionIdMax: 64,
  sdpMax: 32_768,
  candidateMax: 1024,
  sdpMidMax: 64,
  usernameFragmentMax: 256,
  reasonMax: 256,
  errorMessageMax: 512,
  expiresInSecMax: 600,
  maxAttemptsMax: 10,
})

const MAX_SAFE = Number.MAX_SAFE_INTEGER

/** A device id: an RFC 4122 UUID in textual form. */
export const DeviceId = Type.String({
  pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$',
  description: 'UUID (8-4-4-4-12 hex digits)',
})
/** SHA-256 of a certificate's DER, 64 lowercase hex digits. */
export const Fingerprint = Type.String({ pattern: '^[0-9a-f]{64}$', description: 'SHA-256 of the certificate DER, lowercase hex' })
const Name = Type.String({ minLength: 1, maxLength: LIMITS.nameMax })
const PublicKey = Type.String({
  minLength: 4,
  maxLength: LIMITS.publicKeyMax,
  // Padded base64: whole 4-character groups, '=' only as the padding of the last one.
  pattern: '^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$',
  description: 'base64 (RFC 4648 §4, padded) of the SubjectPublicKeyInfo DER',
})
/** 32 bytes in padded standard base64. */
const Base64x32 = Type.String({ pattern: '^[A-Za-z0-9+/]{43}=$', description: '32 bytes, padded base64' })
/**
 * 32 bytes in unpadded base64url (RFC 4648 §5): 43 characters, the last one with its two
 * unused low bits zero, so every value has exactly one spelling.
 */
export const Base64Url32 = Type.String({
  pattern: '^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$',
  description: '32 bytes, unpadded base64url',
})
const SessionId = Type.String({ minLength: 1, maxLength: LIMITS.sessionIdMax, pattern: '^[A-Za-z0-9_-]+$' })
const Timestamp = Type.Integer({ minimum: 0, maximum: MAX_SAFE, description: 'milliseconds since the Unix epoch' })

function message<T extends string, P extends Record<string, TSchema>>(type: T, props: P, description: string) {
  return Type.Object({ type: Type.Literal(type), ...props }, { additionalProperties: false, $id: type, description })
}

export const PairRequest = message(
  'PAIR_REQUEST',
  {
    listenerId: DeviceId,
    listenerName: Name,
    listenerPublicKey: PublicKey,
    listenerCertFingerprint: Fingerprint,
    pairingProof: Type.Optional(Base64Url32),
  },
  "Listener asks to be paired (QR pairing); pairingProof proves it read the QR code's pairingSecret (SPEC §7.1). " +
    'Optional on the wire for listeners that predate it; monitors refuse a request without it unless the application opted in.',
)
export const PairAccepted = message(
  'PAIR_ACCEPTED',
  {
    monitorId: DeviceId,
    authTag: Type.Optional(Base64x32),
  },
  'Monitor accepted the listener; after PIN pairing it carries the monitor confirmation tag.',
)
export const PairRejectReason = Type.Union([
  Type.Literal('INVALID_PIN'),
  Type.Literal('EXPIRED'),
  Type.Literal('INTERNAL_ERROR'),
  Type.Literal('LOCKED'),
  Type.Literal('NOT_PAIRING'),
])
export const PairRejected = message('PAIR_REJECTED', { reason: PairRejectReason }, 'Monitor refused the pairing.')
export const PinPairingInit = message(
  'PIN_PAIRING_INIT',
  {
    listenerId: DeviceId,
    listenerName: Name,
    protocolVersion: Type.Literal(1),
    listenerCertFingerprint: Fingerprint,
  },
  'Listener starts PIN pairing.',
)
export const PinRequired = message(
  'PIN_REQUIRED',
  {
    monitorId: DeviceId,
    pairingSessionId: SessionId,
    pakeMsgA: Base64x32,
    expiresInSec: Type.Integer({ minimum: 1, maximum: LIMITS.expiresInSecMax }),
    maxAttempts: Type.Integer({ minimum: 1, maximum: LIMITS.maxAttemptsMax }),
  },
  "Monitor opened a PIN session; pakeMsgA is its CPace share (monitorId: decision, the transcript needs it).",
)
export const PinTranscript = Type.Object(
  {
    monitorId: DeviceId,
    listenerId: DeviceId,
    listenerPublicKey: PublicKey,
    listenerCertFingerprint: Fingerprint,
    monitorCertFingerprint: Fingerprint,
    pairingSessionId: SessionId,
  },
  { additionalProperties: false, title: 'PinTranscript', description: 'Authenticated PIN-pairing transcript (JCS bytes are MACed).' },
)
export const PinSubmit = message(
  'PIN_SUBMIT',
  {
    pairingSessionId: SessionId,
    pakeMsgB: Base64x32,
    transcript: PinTranscript,
    authTag: Base64x32,
  },
  "Listener's CPace share and its confirmation tag over the transcript.",
)
export const NoiseEvent = message(
  'NOISE_EVENT',
  {
    monitorId: DeviceId,
    timestamp: Timestamp,
    peakLevel: Type.Integer({ minimum: 0, maximum: 100 }),
  },
  'Monitor detected noise.',
)
export const StartStreamRequest = message(
  'START_STREAM_REQUEST',
  {
    sessionId: SessionId,
    mediaType: Type.Union([Type.Literal('audio'), Type.Literal('audio_video')]),
  },
  'Listener asks for a media stream.',
)
export const StartStreamResponse = message(
  'START_STREAM_RESPONSE',
  {
    sessionId: SessionId,
    accepted: Type.Boolean(),
    reason: Type.Optional(Type.String({ maxLength: LIMITS.reasonMax })),
  },
  'Monitor answers a stream request.',
)
export const EndStream = message('END_STREAM', { sessionId: SessionId }, 'Either side ends a stream (idempotent).')
export const PinStream = message('PIN_STREAM', { sessionId: SessionId }, 'Listener pins a stream (keeps it open).')
const Sdp = Type.String({ minLength: 1, maxLength: LIMITS.sdpMax })
export const WebrtcOffer = message('WEBRTC_OFFER', { sessionId: SessionId, sdp: Sdp }, 'WebRTC SDP offer.')
export const WebrtcAnswer = message('WEBRTC_ANSWER', { sessionId: SessionId, sdp: Sdp }, 'WebRTC SDP answer.')
export const IceCandidate = Type.Object(
  {
    candidate: Type.String({ maxLength: LIMITS.candidateMax }),
    sdpMid: Type.Optional(Type.Union([Type.String({ maxLength: LIMITS.sdpMidMax }), Type.Null()])),
    sdpMLineIndex: Type.Optional(Type.Union([Type.Integer({ minimum: 0, maximum: 65_535 }), Type.Null()])),
    usernameFragment: Type.Optional(Type.Union([Type.String({ maxLength: LIMITS.usernameFragmentMax }), Type.Null()])),
  },
  { additionalProperties: false, title: 'IceCandidate', description: 'RTCIceCandidateInit' },
)
export const WebrtcIce = message('WEBRTC_ICE', { sessionId: SessionId, candidate: IceCandidate }, 'WebRTC ICE candidate.')
export const Ping = message('PING', { timestamp: Timestamp }, 'Liveness probe.')
export const Pong = message('PONG', { timestamp: Timestamp }, "Answer to PING, echoing its timestamp.")

/** Application error codes (SPEC.md, "Errors"). */
export const ErrorCode = Object.freeze({
  OK: 0,
  PROTOCOL_ERROR: 1,
  UNAUTHORIZED: 2,
  UNSUPPORTED_MESSAGE: 3,
  CONFLICT: 4,
  INTERNAL_ERROR: 5,
} as const)
export type ErrorName = Exclude<keyof typeof ErrorCode, 'OK'>
export const ERROR_NAMES: readonly ErrorName[] = ['PROTOCOL_ERROR', 'UNAUTHORIZED', 'UNSUPPORTED_MESSAGE', 'CONFLICT', 'INTERNAL_ERROR']

export const ErrorMessage = message(
  'ERROR',
  {
    code: Type.Integer({ minimum: 1, maximum: 5 }),
    error: Type.Union(ERROR_NAMES.map((n) => Type.Literal(n))),
    message: Type.Optional(Type.String({ maxLength: LIMITS.errorMessageMax })),
    inReplyTo: Type.Optional(Type.String({ minLength: 1, maxLength: 40, pattern: '^[A-Z][A-Z0-9_]*$' })),
  },
  'An error signalled in band; code and error name agree.',
)

export const MESSAGE_SCHEMAS = {
  PAIR_REQUEST: PairRequest,
  PAIR_ACCEPTED: PairAccepted,
  PAIR_REJECTED: PairRejected,
  PIN_PAIRING_INIT: PinPairingInit,
  PIN_REQUIRED: PinRequired,
  PIN_SUBMIT: PinSubmit,
  NOISE_EVENT: NoiseEvent,
  START_STREAM_REQUEST: StartStreamRequest,
  START_STREAM_RESPONSE: StartStreamResponse,
  END_STREAM: EndStream,
  PIN_STREAM: PinStream,
  WEBRTC_OFFER: WebrtcOffer,
  WEBRTC_ANSWER: WebrtcAnswer,
  WEBRTC_ICE: WebrtcIce,
  PING: Ping,
  PONG: Pong,
  ERROR: ErrorMessage,
} as const

export type MessageType = keyof typeof MESSAGE_SCHEMAS
export const MESSAGE_TYPES = Object.keys(MESSAGE_SCHEMAS) as MessageType[]

export type PairRequestMessage = Static<typeof PairRequest>
export type PairAcceptedMessage = Static<typeof PairAccepted>
export type PairRejectedMessage = Static<typeof PairRejected>
export type PinPairingInitMessage = Static<typeof PinPairingInit>
export type PinRequiredMessage = Static<typeof PinRequired>
export type PinSubmitMessage = Static<typeof PinSubmit>
export type PinTranscriptObject = Static<typeof PinTranscript>
export type NoiseEventMessage = Static<typeof NoiseEvent>
export type StartStreamRequestMessage = Static<typeof StartStreamRequest>
export type StartStreamResponseMessage = Static<typeof StartStreamResponse>
export type EndStreamMessage = Static<typeof EndStream>
export type PinStreamMessage = Static<typeof PinStream>
export type WebrtcOfferMessage = Static<typeof WebrtcOffer>
export type WebrtcAnswerMessage = Static<typeof WebrtcAnswer>
export type WebrtcIceMessage = Static<typeof WebrtcIce>
export type PingMessage = Static<typeof Ping>
export type PongMessage = Static<typeof Pong>
export type ErrorFrameMessage = Static<typeof ErrorMessage>

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

export function isMessageType(t: string): t is MessageType {
  return Object.prototype.hasOwnProperty.call(MESSAGE_SCHEMAS, t)
}

const ajv = new Ajv({ strict: true, allErrors: false, unicodeRegExp: true, validateFormats: false })
const validators = new Map<MessageType, ValidateFunction>()
for (const t of MESSAGE_TYPES) validators.set(t, ajv.compile(MESSAGE_SCHEMAS[t]))

/** Checks a parsed message of a known type against its schema; returns null or a short reason. */
export function schemaError(type: MessageType, value: unknown): string | null {
  const v = validators.get(type)
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

/** The published JSON Schema of every message (draft 2020-12 compatible subset). */
export function messagesJsonSchema(): Record<string, unknown> {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://cribcall.invalid/schema/control-messages.json',
    title: 'CribCall control-channel messages (v0.2 + ERROR), as implemented by cribcall-quic',
    description:
      'Generated from src/protocol/messages.ts; string lengths count Unicode code points. Every object forbids unknown members.',
    oneOf: MESSAGE_TYPES.map((t) => ({ $ref: `#/$defs/${t}` })),
    $defs: Object.fromEntries(
      MESSAGE_TYPES.map((t) => {
        const plain = JSON.parse(JSON.stringify(MESSAGE_SCHEMAS[t], (k: string, v: unknown) => (k === '$id' ? undefined : v)))
        return [t, plain as Record<string, unknown>]
      }),
    ),
  }
}
