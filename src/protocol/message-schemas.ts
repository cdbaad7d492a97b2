// The CribCall v0.2 control messages (plus ERROR) and the pairing QR payload, declared
// once with TypeBox. The same declarations give the TypeScript types, the validators
// (compiled ahead of time into validators.generated.ts by `npm run schema`, so that the
// library's import loads neither TypeBox nor Ajv) and the published JSON Schema
// (schema/messages.schema.json). Importable as `cribcall-quic/schemas`.
import { Type, type TSchema } from '@sinclair/typebox'
import { DEVICE_ID_PATTERN, FINGERPRINT_PATTERN } from '../base/formats.js'
import { ERROR_NAMES, LIMITS, MESSAGE_TYPES as MESSAGE_TYPE_LIST, type MessageType } from './message-constants.js'

const MAX_SAFE = Number.MAX_SAFE_INTEGER

/** A device id: an RFC 4122 UUID in textual form. */
export const DeviceId = Type.String({
  pattern: DEVICE_ID_PATTERN,
  description: 'UUID (8-4-4-4-12 hex digits)',
})
/** SHA-256 of a certificate's DER, 64 lowercase hex digits. */
export const Fingerprint = Type.String({ pattern: FINGERPRINT_PATTERN, description: 'SHA-256 of the certificate DER, lowercase hex' })
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
} as const satisfies Record<MessageType, TSchema>

/** The monitor's pairing QR payload, `monitor_pair_v1` (SPEC.md §7.1). */
export const QrPayloadSchema = Type.Object(
  {
    type: Type.Literal('monitor_pair_v1'),
    monitorId: DeviceId,
    monitorName: Type.String({ minLength: 1, maxLength: LIMITS.nameMax }),
    monitorCertFingerprint: Fingerprint,
    monitorPublicKey: Type.Optional(
      Type.String({ minLength: 4, maxLength: LIMITS.publicKeyMax, pattern: '^[A-Za-z0-9+/]+={0,2}$' }),
    ),
    /**
     * The pairing window's one-time secret (32 random bytes, unpadded base64url). A
     * listener proves it read the QR code with `PAIR_REQUEST.pairingProof`. Absent in
     * the QR codes of monitors that predate it (the listener then sends no proof).
     */
    pairingSecret: Type.Optional(Base64Url32),
    service: Type.Object(
      {
        protocol: Type.Literal('baby-monitor'),
        version: Type.Literal(1),
        defaultPort: Type.Integer({ minimum: 1, maximum: 65_535 }),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false, $id: 'monitor_pair_v1' },
)

/** The published JSON Schema of every message (draft 2020-12 compatible subset). */
export function messagesJsonSchema(): Record<string, unknown> {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://cribcall.invalid/schema/control-messages.json',
    title: 'CribCall control-channel messages (v0.2 + ERROR), as implemented by cribcall-quic',
    description:
      'Generated from src/protocol/message-schemas.ts; string lengths count Unicode code points. Every object forbids unknown members.',
    oneOf: MESSAGE_TYPE_LIST.map((t) => ({ $ref: `#/$defs/${t}` })),
    $defs: Object.fromEntries(
      MESSAGE_TYPE_LIST.map((t) => {
        const plain = JSON.parse(JSON.stringify(MESSAGE_SCHEMAS[t], (k: string, v: unknown) => (k === '$id' ? undefined : v)))
        return [t, plain as Record<string, unknown>]
      }),
    ),
  }
}
