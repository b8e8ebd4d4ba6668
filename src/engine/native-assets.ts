/**
 * The llama.cpp native libraries embedded in the compiled binary. From source
 * this is null (node-llama-cpp finds its npm packages); scripts/build.ts
 * replaces this module with the embedded file list and the sha256 of each.
 */
export interface NativeAsset { name: string; path: string; sha256: string }
/** One prebuilt package's files, unpacked to <root>/<folder>/ (node-llama-cpp's layout). */
export interface NativeFolder { folder: string; assets: NativeAsset[] }
/** Which engine the libraries are: node-llama-cpp's npm prebuilt, or our own OpenMP build (scripts/engine-build.ts). */
export interface NativeEngine { kind: "prebuilt" | "local"; key?: string; openmp?: boolean; portable?: boolean }
export interface NativeBundle { version: string; engine?: NativeEngine; folders: NativeFolder[] }

export const NATIVE_BUNDLE: NativeBundle | null = null;
