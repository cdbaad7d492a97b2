// Public API of cribcall-quic: the transport layer (QUIC endpoint, pinned mutual TLS,
// framed control stream) and, on top of it, the control-channel protocol layer
// (canonical JSON, strict parsing, message schemas, gating, ControlChannel). Pairing is
// built on top of these.
export * from './transport.js'

// Control-channel protocol layer (SPEC.md §3–§6): canonical JSON, strict parsing,
// message schemas, gating and the typed ControlChannel.
export {
  ControlChannel,
  type ChannelRole,
  type ConnectChannelOptions,
  type ControlChannelEvents,
  type ControlChannelOptions,
  type PingOptions,
  type Trust,
} from './protocol/control-channel.js'
export { judgeFrame, maySend, peerRole, type GateState, type Verdict } from './protocol/gating.js'
export {
  ERROR_NAMES,
  ErrorCode,
  LIMITS,
  MESSAGE_RULES,
  MESSAGE_TYPES,
  isMessageType,
  schemaError,
  type EndStreamMessage,
  type ErrorFrameMessage,
  type ErrorName,
  type Message,
  type MessageOf,
  type MessageType,
  type NoiseEventMessage,
  type PairAcceptedMessage,
  type PairRejectedMessage,
  type PairRequestMessage,
  type PingMessage,
  type PinPairingInitMessage,
  type PinRequiredMessage,
  type PinStreamMessage,
  type PinSubmitMessage,
  type PinTranscriptObject,
  type PongMessage,
  type Sender,
  type StartStreamRequestMessage,
  type StartStreamResponseMessage,
  type WebrtcAnswerMessage,
  type WebrtcIceMessage,
  type WebrtcOfferMessage,
} from './protocol/messages.js'
export {
  InvalidMessageError,
  IteratorOverflowError,
  NotAllowedError,
  ProtocolError,
  SessionConflictError,
} from './protocol/errors.js'
export {
  CANONICAL_MAX_DEPTH,
  CanonicalizationError,
  canonicalBytes,
  canonicalString,
  type CanonicalizationReason,
} from './protocol/canonical.js'
export {
  DEFAULT_MAX_DEPTH,
  MalformedJsonError,
  parseStrictJson,
  type MalformedJsonReason,
  type StrictJsonOptions,
} from './protocol/strict-json.js'
// ---- stores, pairing and roles
export {
  FileTrustStore,
  MemoryTrustStore,
  TrustStoreError,
  checkTrustEntry,
  type TrustEntry,
  type TrustStore,
  type TrustStoreEvents,
} from './store/trust-store.js'
export { IdentityFileError, IdentityNotFoundError, loadOrCreateIdentity, type LoadIdentityOptions } from './store/identity-store.js'
export { LockTimeoutError, PermissionError } from './store/fs-atomic.js'
export {
  COMPACT_QR_MAX_LENGTH,
  COMPACT_QR_NAME_MAX_BYTES,
  COMPACT_QR_PREFIX,
  DEFAULT_MONITOR_PORT,
  QrPayloadError,
  buildCompactQrPayload,
  buildQrPayload,
  compactQrName,
  parseQrPayload,
  type QrPayload,
  type QrPayloadInput,
} from './pairing/qr.js'
export {
  QR_PAIRING_CONTEXT,
  generateQrPairingSecret,
  qrPairingProof,
  qrPairingTranscript,
  verifyQrPairingProof,
  type QrPairingClaims,
} from './pairing/qr-proof.js'
export { PinRules, isTrivialPin, randomPin, type PinRulesOptions, type PinSessionInfo } from './pairing/pin-session.js'
export { PinInitiator, respondPin, tagsEqual, transcriptBytes, type PinTags } from './pairing/pin.js'
export {
  Monitor,
  type MonitorEvents,
  type MonitorOptions,
  type OpenPairingOptions,
  type PairingRequestInfo,
} from './roles/monitor.js'
export {
  DEFAULT_MAX_LISTENER_QUEUE_BYTES,
  DEFAULT_REPLAY_WINDOW_MS,
  type NoiseBroadcastReport,
  type NoiseOutcome,
} from './roles/noise-fanout.js'
export { MAX_REPLAY_EVENTS } from './roles/noise-log.js'
export { TOO_SLOW_REASON } from './roles/noise-feed.js'
export {
  Listener,
  ListenerChannel,
  NotPairedError,
  PairingFailedError,
  PairingRejectedError,
  type ListenerChannelEvents,
  type ListenerEvents,
  type ListenerOptions,
  type PairTarget,
  type PinPromptInfo,
  type ReconnectOptions,
  LISTENER_KEEP_ALIVE_MS,
  RECONNECT_DEFAULTS,
  type ChannelOptions,
  type DisconnectInfo,
  type GetPin,
  type ReconnectingInfo,
} from './roles/listener.js'
