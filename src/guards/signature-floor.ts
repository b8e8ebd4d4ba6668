/**
 * Per signing key, the newest signed timestamp this server accepted ahead of its own clock, kept in the state dir
 * across restarts. Nonces live in memory, and "from before the process started" covers only timestamps behind the
 * start: a request timestamped ahead (a client clock that leads, inside the 300 s allowed) was replayable once after a
 * restart that came before its timestamp (claims audit). A restarted server refuses that key's timestamps up to its
 * floor. Per key: one global floor let one client's leading clock lock every other signing key out for up to 300 s
 * after a restart (attack on the fix). A floor further ahead of the clock than any accepted timestamp could be (a
 * planted file) is ignored.
 *
 * Written only when an accepted timestamp is ahead of the server's clock and newer than that key's last one written
 * (a client in step with the server writes nothing), without fsync: it survives the process's restart, not a power cut.
 */
import fs from "node:fs";
import path from "node:path";
import { openPlainFile } from "../util/fs";
import { MAX_SKEW_S } from "./signature";

/** Most bytes read from the file: a few dozen bytes per signing key. */
const MAX_BYTES = 1 << 20;

export class SignatureFloor {
  /** What earlier processes accepted, read at start: what this process refuses. */
  private readonly atStart: Readonly<Record<string, number>>;
  /** What is kept for the next process: atStart, raised by what this process accepts. */
  private readonly floors: Record<string, number>;
  private readonly file: string;

  constructor(stateDir: string, nowMs: number, private readonly warn: (msg: string) => void = () => {}) {
    this.file = path.join(stateDir, "signature-floor");
    this.atStart = this.read(nowMs);
    this.floors = { ...this.atStart };
  }

  /**
   * Timestamps up to this (unix seconds) for `signer` may have been accepted by an earlier process: refused. 0: none.
   * The floor read at start, never what this process accepted since (its own nonce cache covers those).
   */
  floorFor(signer: string): number {
    return this.atStart[signer] ?? 0;
  }

  private read(nowMs: number): Record<string, number> {
    let text: string;
    try {
      const fd = openPlainFile(this.file);
      const buf = Buffer.alloc(MAX_BYTES); // never more read, whatever was planted there
      try { text = buf.toString("utf8", 0, fs.readSync(fd, buf, 0, MAX_BYTES, 0)); } finally { fs.closeSync(fd); }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") this.warn(`${this.file} cannot be read (${(e as Error).message}): signed requests timestamped ahead of the server's clock may be replayable once after this start`);
      return {};
    }
    let v: unknown;
    try { v = JSON.parse(text); } catch { return {}; }
    const out: Record<string, number> = Object.create(null);
    if (!v || typeof v !== "object") return out;
    const latest = nowMs / 1000 + MAX_SKEW_S; // no accepted timestamp was later than this
    for (const [k, ts] of Object.entries(v)) if (Number.isInteger(ts) && ts > 0 && ts <= latest) out[k] = ts as number;
    return out;
  }

  /** An accepted signed request's timestamp: kept when it is ahead of the clock and newer than the key's last kept. */
  accepted(signer: string, ts: number, nowMs: number) {
    if (ts <= nowMs / 1000 || ts <= (this.floors[signer] ?? 0)) return;
    this.floors[signer] = ts;
    // The expired ones go: a floor behind the clock refuses nothing "from before the start" does not.
    for (const [k, t] of Object.entries(this.floors)) if (t <= nowMs / 1000) delete this.floors[k];
    try {
      const fd = openPlainFile(this.file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC);
      try { fs.writeSync(fd, JSON.stringify(this.floors) + "\n"); } finally { fs.closeSync(fd); }
    } catch (e) {
      this.warn(`${this.file} cannot be written (${(e as Error).message}): a request timestamped ahead of the server's clock may be replayable once after a restart`);
    }
  }
}
