/**
 * The llama.cpp native libraries embedded in the compiled binary. From source
 * this is null (node-llama-cpp finds its npm package); scripts/build.ts
 * replaces this module with the embedded file list and the sha256 of each.
 */
export interface NativeAsset { name: string; path: string; sha256: string }
export interface NativeBundle { folder: string; version: string; assets: NativeAsset[] }

export const NATIVE_BUNDLE: NativeBundle | null = null;
