/**
 * Lockdown (containment during an incident): while `<state dir>/lockdown` exists, every route but
 * GET /health and /metrics answers 503 `lockdown`, so no inference runs while the operator looks;
 * /health stays up so supervisors do not restart the server and lose its state. A file, not a flag in
 * memory: it takes effect on the next request without a restart, and survives one. One stat() per request.
 */
import fs from "node:fs";
import path from "node:path";
import { AppError } from "../errors";
import { readSmallFile } from "../util/fs";

export const lockdownFile = (stateDir: string) => path.join(stateDir, "lockdown");

/** What `appliance lockdown` writes into the file (the server only checks that it exists). */
export interface LockdownRecord { since: string; by: { uid: number | null; user: string | null }; reason: string | null }

/** The record while in lockdown; "unreadable" for a file that is not one; undefined when not in lockdown. */
export function readLockdown(stateDir: string): Partial<LockdownRecord> | "unreadable" | undefined {
  // Only a missing file is "not in lockdown": the guard holds the server in lockdown while the path exists at all
  // (a directory, a file it cannot read), so that is what this says too (it said "not in lockdown", fix-attack run).
  // A regular file of at most 64 KiB is read: a FIFO or a link to /dev/zero there hung or filled the start.
  const file = lockdownFile(stateDir);
  const text = readSmallFile(file, 1 << 16);
  if (text === undefined) return fs.lstatSync(file, { throwIfNoEntry: false }) ? "unreadable" : undefined;
  try {
    const r: unknown = JSON.parse(text);
    return r && typeof r === "object" ? r as Partial<LockdownRecord> : "unreadable";
  } catch { return "unreadable"; }
}

/** Paths that stay up in lockdown: liveness and the operator's metrics (which still need their key). */
const OPEN = new Set(["/health", "/metrics"]);

export class LockdownError extends AppError {
  constructor() {
    super(`The server is in lockdown: inference is stopped by its operator. Only ${[...OPEN].join(" and ")} answer.`, 503, "service_unavailable", "lockdown");
  }
}

/** How often, while generations run, the server looks for a lockdown begun since they started (it cuts them). */
export const LOCKDOWN_WATCH_MS = 250;

/** Whether `stateDir` is in lockdown now: what the request guard, /health, /metrics and the in-flight watch ask. */
export function lockedDown(stateDir: string): () => boolean {
  const file = lockdownFile(stateDir);
  return () => fs.existsSync(file);
}

/** A check for the request path; throws LockdownError while the file exists. */
export function lockdownGuard(stateDir: string): (pathname: string) => void {
  const locked = lockedDown(stateDir);
  return (pathname) => {
    if (!OPEN.has(pathname) && locked()) throw new LockdownError();
  };
}
