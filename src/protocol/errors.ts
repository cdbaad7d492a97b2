import { CribcallError } from '../transport/errors.js'

import type { AppErrorName } from '../base/error-codes.js'
/** A message failed its schema (what this library would send is invalid). */
export class InvalidMessageError extends CribcallError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_INVALID_MESSAGE', message, options)
    this.name = 'InvalidMessageError'
  }
}

/** This side's role or the channel's trust does not allow sending that message. */
export class NotAllowedError extends CribcallError {
  /** 'role': the type belongs to the other role; 'trust': the channel is pairing-only. */
  readonly rule: 'role' | 'trust'

  constructor(rule: 'role' | 'trust', message: string, options?: ErrorOptions) {
    super(rule === 'trust' ? 'ERR_UNAUTHORIZED' : 'ERR_NOT_ALLOWED', message, options)
    this.name = 'NotAllowedError'
    this.rule = rule
  }
}

/** A START_STREAM_REQUEST for a session that is already live. */
export class SessionConflictError extends CribcallError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_CONFLICT', message, options)
    this.name = 'SessionConflictError'
  }
}

/**
 * The peer signalled an error in band (an ERROR frame) or the channel rejected what the
 * peer sent. `protocolCode` is the SPEC's application code (1..5).
 */
export class ProtocolError extends CribcallError {
  readonly protocolCode: number
  readonly errorName: AppErrorName
  readonly byPeer: boolean

  constructor(protocolCode: number, errorName: AppErrorName, message: string, byPeer: boolean, options?: ErrorOptions) {
    super(`ERR_PROTOCOL_${errorName}`, message, options)
    this.name = 'ProtocolError'
    this.protocolCode = protocolCode
    this.errorName = errorName
    this.byPeer = byPeer
  }
}

/** The async iterator of a channel fell too far behind. */
export class IteratorOverflowError extends CribcallError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_ITERATOR_OVERFLOW', message, options)
    this.name = 'IteratorOverflowError'
  }
}
