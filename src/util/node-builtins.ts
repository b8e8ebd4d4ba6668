/**
 * Node built-ins that a start does not need, loaded at their first use.
 *
 * In the compiled binary every `import … from "node:x"` in a chunk (scripts/build.ts splits the program) is evaluated
 * when that chunk loads, before any of its code runs, whichever module holds the import; the chunks every command
 * loads hold most of the program. Bun writes node:crypto, node:net,
 * node:dgram and node:tty in JavaScript over node:stream, and loading them was ~8-10 ms of every start of the binary
 * (`appliance --version` as much as `serve`; measured in a compiled probe, 2-core VM). Hashes, HMACs and random
 * bytes come from Bun's native CryptoHasher and Web Crypto instead (util/sha256.ts, util/random.ts); what only some
 * paths need (Ed25519 keys, X.509 certificates, TCP and UDP sockets, the trusted-proxy address list) is required here
 * when first called, and then cached by the runtime like any require.
 */
export const nodeCrypto = (): typeof import("node:crypto") => require("node:crypto");
export const nodeNet = (): typeof import("node:net") => require("node:net");
export const nodeDgram = (): typeof import("node:dgram") => require("node:dgram");
