/** What is built, and the oldest tools that can build it. */

/** The quiche crate version that is built (and that ffi/quiche.ts is bound to). */
export const QUICHE_VERSION = "0.30.0";

/** Cargo features enabled for the build: `ffi` exports the C API. */
export const QUICHE_FEATURES: readonly string[] = ["ffi"];

/** Oldest rustc that quiche 0.30.0 accepts (its `rust-version`). */
export const MIN_RUST_VERSION = "1.88.0";

/** Oldest cmake that the vendored BoringSSL accepts (`cmake_minimum_required`). */
export const MIN_CMAKE_VERSION = "3.22.0";
