/**
 * One installed build's record, <engine dir>/<node-llama-cpp version>/<folder>.json, written by installEngine: every
 * file's sha256 and how it was built. A record beside its folder is also what proves a version dir is ours (prune,
 * uninstall: engine-versions.ts).
 */
import fs from "node:fs";
import { openPlainFile, readFd } from "../util/fs";
import type { EngineGpu } from "./engine-tools";

/** One installed build: <folder>.json. */
export interface EngineRecord {
  folder: string;
  /** File name → sha256 of every file in <folder>/ (flat). */
  files: Record<string, string>;
  nlcVersion: string; release: string; commit: string;
  gpu: EngineGpu; portable: boolean; openmp: boolean;
  cmakeOptions: Record<string, string>;
  compiler: string; cmake: string; seconds: number; builtAt: string;
  /** Source patches the build carries (engine-decode-thread.ts); absent in records written before patches existed. */
  patches?: string[];
}

/** A record's file name; the capture is its folder. */
export const RECORD = /^([a-z0-9-]+)\.json$/;
const FILE_NAME = /^[A-Za-z0-9._+-]+$/;

/** Reads a record (a plain file, not a link); throws when it is not one. */
export function readRecord(file: string): EngineRecord {
  const fd = openPlainFile(file);
  try {
    const r = JSON.parse(readFd(fd).toString("utf8")) as EngineRecord;
    if (typeof r.folder !== "string" || !r.files || typeof r.files !== "object") throw new Error("not an engine record");
    // A recorded name is one plain file of the folder: never a path, "." or "..".
    for (const name of Object.keys(r.files)) if (!FILE_NAME.test(name) || name === "." || name === "..") throw new Error(`recorded file name ${JSON.stringify(name)} is not a plain file name`);
    return r;
  } finally { fs.closeSync(fd); }
}
