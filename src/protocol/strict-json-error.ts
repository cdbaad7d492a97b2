// Why a strict JSON payload was rejected: the stable reason codes and the error that
// carries them (thrown by parseStrictJson in strict-json.ts, which re-exports both).

/** Why a payload was rejected. */
export type MalformedJsonReason =
  | 'TOO_LARGE'
  | 'INVALID_UTF8'
  | 'BOM'
  | 'SYNTAX'
  | 'TRAILING_DATA'
  | 'DUPLICATE_KEY'
  | 'LONE_SURROGATE'
  | 'TOO_DEEP'
  | 'NUMBER_OUT_OF_RANGE'
  | 'NOT_AN_OBJECT'
  | 'FORBIDDEN_KEY'

export class MalformedJsonError extends Error {
  /** Stable machine-readable code. */
  readonly reason: MalformedJsonReason
  /**
   * Where the problem was found: a UTF-16 index into the decoded text, or a byte
   * offset for TOO_LARGE / INVALID_UTF8 / BOM (where no text exists yet). -1 if unknown.
   */
  readonly position: number

  constructor(reason: MalformedJsonReason, message: string, position = -1) {
    super(position >= 0 ? `${message} (at ${position})` : message)
    this.name = 'MalformedJsonError'
    this.reason = reason
    this.position = position
  }
}
