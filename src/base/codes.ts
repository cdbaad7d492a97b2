/**
 * Application error codes of the CribCall control channel (SPEC.md §6): the `code` of an
 * in-band ERROR message and the QUIC application error code of CONNECTION_CLOSE.
 *
 * The one TypeScript source of these numbers; `native/core/src/codes.rs` is the Rust
 * one, and test/one-source.test.ts fails when the two disagree.
 */
export const AppErrorCode = Object.freeze({
  OK: 0,
  PROTOCOL_ERROR: 1,
  UNAUTHORIZED: 2,
  UNSUPPORTED_MESSAGE: 3,
  CONFLICT: 4,
  INTERNAL_ERROR: 5,
} as const)
export type AppErrorCode = (typeof AppErrorCode)[keyof typeof AppErrorCode]
