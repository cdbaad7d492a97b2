#!/bin/sh
# RUSTC_WRAPPER of scripts/coverage.mjs: cargo runs it as `rustc-wrapper.sh <rustc> <args>`.
# Adds -C instrument-coverage to the packages `cargo test -p …` selected (cargo sets
# CARGO_PRIMARY_PACKAGE for them: our crates, their unit and integration tests), so
# quiche, BoringSSL and the other dependencies are built as usual, uninstrumented.
rustc="$1"
shift
if [ -n "${CARGO_PRIMARY_PACKAGE:-}" ]; then
  exec "$rustc" "$@" -C instrument-coverage
fi
exec "$rustc" "$@"
