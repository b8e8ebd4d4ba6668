/**
 * The llama.cpp native libraries embedded in the compiled binary. From source
 * this is null (node-llama-cpp finds its npm packages); scripts/build.ts
 * replaces this module with the embedded file list and the sha256 of each.
 */
export interface NativeAsset { name: string; path: string; sha256: string }
/** One prebuilt package's files, unpacked to <root>/<folder>/ (node-llama-cpp's layout). */
export interface NativeFolder { folder: string; assets: NativeAsset[] }
export interface NativeBundle { version: string; folders: NativeFolder[] }

export const NATIVE_BUNDLE: NativeBundle | null = null;
