/**
 * The newest signed timestamp this server accepted ahead of its own clock, kept in the state dir across restarts.
 * Nonces live in memory, and "from before the process started" covers only timestamps behind the start: a request
 * timestamped ahead (a client clock that leads, inside the 300 s allowed) was replayable once after a restart that
 * came before its timestamp (claims audit). A restarted server refuses timestamps up to this one.
 *
 * Written only when an accepted timestamp is ahead of the server's clock and newer than the last one written (a
 * client in step with the server writes nothing), without fsync: it survives the process's restart, not a power cut.
 */
import fs from "node:fs";
import path from "node:path";
import { openPlainFile } from "../util/fs";

export class SignatureFloor {
  /** Timestamps up to this (unix seconds) may have been accepted by an earlier process: refused. 0: none. */
  readonly floor: number;
  private written: number;
  private readonly file: string;

  constructor(stateDir: string, private readonly warn: (msg: string) => void = () => {}) {
    this.file = path.join(stateDir, "signature-floor");
    this.floor = this.read();
    this.written = this.floor;
  }

  private read(): number {
    let text: string;
    try {
      const fd = openPlainFile(this.file);
      const buf = Buffer.alloc(64); // a few digits: never more read, whatever was planted there
      try { text = buf.toString("utf8", 0, fs.readSync(fd, buf, 0, 64, 0)).trim(); } finally { fs.closeSync(fd); }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") this.warn(`${this.file} cannot be read (${(e as Error).message}): signed requests timestamped ahead of the server's clock may be replayable once after this start`);
      return 0;
    }
    return /^\d{1,12}$/.test(text) ? Number(text) : 0;
  }

  /** An accepted signed request's timestamp: kept when it is ahead of the clock and newer than the last kept. */
  accepted(ts: number, nowMs: number) {
    if (ts <= nowMs / 1000 || ts <= this.written) return;
    this.written = ts;
    try {
      const fd = openPlainFile(this.file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC);
      try { fs.writeSync(fd, `${ts}\n`); } finally { fs.closeSync(fd); }
    } catch (e) {
      this.warn(`${this.file} cannot be written (${(e as Error).message}): a request timestamped ahead of the server's clock may be replayable once after a restart`);
    }
  }
}
