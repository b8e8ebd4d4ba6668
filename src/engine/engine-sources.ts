/**
 * The engine sources embedded in the compiled binary (scripts/engine-sources.ts makes the archive; scripts/build.ts
 * replaces this module with the embedded file and its facts). From source, or a binary built where git was missing,
 * ENGINE_SOURCES is null and `appliance engine build` says so.
 */
export interface EngineSourceArchive {
  /** The embedded tar.zst (a $bunfs path inside the binary). */
  path: string;
  sha256: string;
  bytes: number;
  /** node-llama-cpp's version: a built addon is used only by a binary with the same one. */
  nlcVersion: string;
  /** node-llama-cpp's llama.cpp release tag and the exact source commit in the archive. */
  release: string;
  commit: string;
  patches: string[];
}

export const ENGINE_SOURCES: EngineSourceArchive | null = null;
/** The compiled binary's node-llama-cpp version (where built engines for it live); null from source. */
export const ENGINE_NLC_VERSION: string | null = null;
