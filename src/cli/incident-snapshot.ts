/**
 * The evidence `appliance incident snapshot` gathers, one file each, into a folder that the command
 * then packs. Nothing secret goes in: the config is redacted, keys appear as metadata only (no
 * digests), audit.key and keys.json are never copied, and logs never held keys or prompts.
 * A source that cannot be read becomes a note in manifest.json, never a failed snapshot: during an
 * incident a partial record now beats a complete one never.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { redactConfig } from "../config/load";
import type { Config } from "../config/schema";
import { KeyStore, keysFilePath } from "../guards/keys";
import { runDoctor } from "../integrity/doctor";
import { START_MEMO } from "../integrity/start-memo";
import { runVerify } from "../integrity/verify";
import { auditFiles, verifyAudit } from "../log/audit-verify";
import { probeInit } from "../service/health-probe";
import type { Layout } from "../service/layout";
import { openPlainFile, readSmallFile } from "../util/fs";
import { sha256Bytes } from "../util/sha256";
import { versionInfo } from "../version";

export interface SnapshotSources {
  config: Readonly<Config>;
  configFile?: string;
  installed?: Layout;
  /** The running server's process id (--pid, or systemd's MainPID when installed). */
  pid?: number;
  /** The server's /health URL. */
  healthUrl: string;
  logLines: number;
  auditLines: number;
}

/**
 * The last n audit records, oldest first: from the log, and when it holds fewer (right after a rotation it holds
 * few or none) from the rotated files before it (auditFiles: the order `audit verify` walks).
 */
function auditTail(file: string, n: number): string {
  const parts: string[] = [];
  let have = 0;
  for (const f of auditFiles(file).reverse()) {
    if (have >= n) break;
    const text = tail(f, n - have);
    have += text.split("\n").length - 1;
    parts.unshift(text);
  }
  return parts.join("");
}

/** Read at most this much of a file's end: a tail without newlines is not a log this program writes. */
const TAIL_BYTES = 64 << 20;

/**
 * The last n lines of a file, read from its end (audit logs and alert logs can be large). A regular file only,
 * never through a link: the service account could plant /etc/shadow's link at its audit log's path (root copied it
 * into the archive) or a FIFO (the snapshot hung), fix-attack run.
 */
function tail(file: string, n: number): string {
  const fd = openPlainFile(file);
  try {
    const size = fs.fstatSync(fd).size;
    // Bytes gathered and their newlines counted as read: a tail without newlines is read once, not re-split per step.
    const chunks: Buffer[] = [];
    let start = size, newlines = 0;
    while (start > 0 && size - start < TAIL_BYTES && newlines <= n) {
      const len = Math.min(65_536, start);
      start -= len;
      const buf = Buffer.alloc(len);
      fs.readSync(fd, buf, 0, len, start);
      chunks.unshift(buf);
      for (let i = buf.indexOf(0x0a); i >= 0; i = buf.indexOf(0x0a, i + 1)) newlines++;
    }
    const lines = Buffer.concat(chunks).toString("utf8").split("\n");
    if (lines.at(-1) === "") lines.pop();
    return lines.slice(-n).join("\n") + (lines.length ? "\n" : "");
  } finally {
    fs.closeSync(fd);
  }
}

function run(argv: string[]): { code: number | null; out: string } {
  try {
    const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
    return { code: r.exitCode, out: r.stdout.toString() + r.stderr.toString() };
  } catch (e) {
    return { code: null, out: (e as Error).message };
  }
}

/** /proc/PID/status fields that matter for memory and threads (Linux), plus open descriptors. */
function processStats(pid: number): Record<string, unknown> {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const pick = ["Name", "State", "VmPeak", "VmSize", "VmHWM", "VmRSS", "RssAnon", "RssFile", "VmSwap", "Threads", "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"];
  const fields = Object.fromEntries(status.split("\n").map((l) => l.split(/:\s+/)).filter(([k]) => pick.includes(k!)).map(([k, v]) => [k, v]));
  let fds: number | string;
  try { fds = fs.readdirSync(`/proc/${pid}/fd`).length; } catch (e) { fds = (e as NodeJS.ErrnoException).code ?? "unreadable"; }
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const ticks = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { pid, ...fields, openFds: fds, utimeTicks: Number(ticks[11]), stimeTicks: Number(ticks[12]), startTicks: Number(ticks[19]) };
}

/** Key metadata, allow-listed field by field so a new secret field can never slip in. */
function keyMetadata(stateDir: string) {
  const store = new KeyStore(keysFilePath(stateDir));
  return store.list().map((k) => ({
    id: k.id, name: k.name, scopes: k.scopes, created: k.created, expires: k.expires, revoked: k.revoked,
    rpm: k.rpm, tpm: k.tpm, maxConcurrent: k.maxConcurrent, requireSignature: k.requireSignature,
    hasSigningKey: k.signingKey !== null, rotationGraceUntil: k.previous?.validUntil ?? null,
  }));
}

/** Writes every evidence file into dir; returns the notes on what could not be collected. */
export async function collectSnapshot(dir: string, s: SnapshotSources): Promise<{ files: Record<string, string>; notes: string[]; auditOk?: boolean }> {
  const notes: string[] = [];
  const files: Record<string, string> = {};
  const put = (name: string, data: string) => {
    fs.writeFileSync(path.join(dir, name), data, { mode: 0o600 });
    files[name] = sha256Bytes(data);
  };
  const json = (v: unknown) => JSON.stringify(v, null, 2) + "\n";
  const attempt = async (what: string, fn: () => unknown) => {
    try { await fn(); } catch (e) {
      // The code once: Node's messages begin with it ("ENOENT ENOENT: no such file…" and "start memo:  …" were printed).
      const code = (e as NodeJS.ErrnoException).code, message = (e as Error).message;
      notes.push(`${what}: ${code && !message.includes(code) ? `${code}: ` : ""}${message}`);
    }
  };
  const stateDir = s.config.stateDir;

  put("config.redacted.json", json({ file: s.configFile ?? null, config: redactConfig(s.config) }));
  await attempt("keys", () => put("keys.json", json(keyMetadata(stateDir))));
  // What the server remembered about its models' templates (start-memo.ts): small, no secrets, and where its account
  // could have forged a skipped template trial. Read as a regular file only (not a link or FIFO planted there).
  await attempt("start memo", () => {
    const text = readSmallFile(path.join(stateDir, START_MEMO), 1 << 20);
    if (text === undefined) throw new Error(`${START_MEMO}: missing, not a regular file, or over 1 MiB`);
    put(START_MEMO, text);
  });

  const auditFile = path.join(stateDir, "audit.jsonl");
  let auditOk: boolean | undefined;
  await attempt("audit tail", () => put("audit-tail.jsonl", auditTail(auditFile, s.auditLines)));
  await attempt("audit verify", () => {
    const r = verifyAudit(auditFile);
    auditOk = r.ok;
    put("audit-verify.json", json(r));
  });

  await attempt("verify", async () => {
    const checks = await runVerify({ config: s.config, installed: s.installed });
    put("verify.json", json(checks));
  });
  await attempt("doctor", () => put("doctor.json", json(runDoctor())));

  // Named with its URL: a server run by hand on another port than the config's is found with --port.
  await attempt(`health ${s.healthUrl}`, async () => {
    // As status asks it (https without checking the certificate; with mTLS it has no client certificate to show).
    // Bun's own words for a refused connect ("… Is the computer able to access the url?") are not the operator's.
    const r = await fetch(s.healthUrl, probeInit(s.healthUrl, 3000)).catch((e: NodeJS.ErrnoException) => {
      throw new Error(`no answer (${e.code ?? e.name})`);
    });
    put("health.json", json({ url: s.healthUrl, status: r.status, body: await r.text() }));
  });

  // Logs: the service's journal when installed under systemd; the alert log files beside it.
  if (s.installed?.platform === "systemd" && s.installed.root === "/") {
    // The anchor job is the one that reports a rewritten audit log.
    const j = run(["journalctl", "-u", "appliance.service", "-u", "appliance-verify.service", "-u", "appliance-anchor.service", "-n", String(s.logLines), "--no-pager", "-o", "short-iso-precise"]);
    if (j.code === 0) put("journal.log", j.out); else notes.push(`journal: journalctl exited ${j.code}: ${j.out.trim().slice(0, 300)}`);
  } else notes.push("journal: not an installed systemd service (the server logs to its stdout; keep what captured it)");
  const logDir = s.installed?.logDir;
  if (logDir && fs.existsSync(logDir)) {
    // One level of subfolders too: install's verify/ holds the daily check's outcome (verify-status.json).
    const files = fs.readdirSync(logDir, { withFileTypes: true }).flatMap((e) => e.isFile() ? [e.name]
      : e.isDirectory() ? fs.readdirSync(path.join(logDir, e.name), { withFileTypes: true }).filter((f) => f.isFile()).map((f) => path.join(e.name, f.name)) : []);
    for (const f of files) await attempt(`log ${f}`, () => put(`logs-${f.replace(/[^\w.-]/g, "_")}`, tail(path.join(logDir, f), s.logLines)));
  }

  const host = {
    hostname: os.hostname(), platform: `${process.platform}-${process.arch}`, kernel: os.release(), uptimeSeconds: os.uptime(),
    loadavg: os.loadavg(), cpus: os.availableParallelism(), totalMemBytes: os.totalmem(), freeMemBytes: os.freemem(),
    tool: versionInfo(), collectedBy: { uid: process.getuid?.(), pid: process.pid, memory: process.memoryUsage() },
  };
  let server: Record<string, unknown> | undefined;
  if (s.pid) await attempt(`process ${s.pid}`, () => { server = processStats(s.pid!); });
  else notes.push("process: no server pid (give --pid, or run where the systemd service is installed)");
  put("process.json", json({ host, server: server ?? null }));
  return { files, notes, auditOk };
}
