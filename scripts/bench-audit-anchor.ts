#!/usr/bin/env bun
/**
 * bun scripts/bench-audit-anchor.ts [--records N] [--new M] — what one audit anchor run costs (log/audit-anchor.ts):
 * a log of N records (written by the real AuditLog) is anchored once; M more are written; then the time of the
 * incremental run (what appliance-anchor.timer does every 5 minutes) and of a --full run (the daily check) over
 * the same log, medians of 5. Prints the log size and the load average.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { AuditLog } from "../src/log/audit";
import { anchorAudit } from "../src/log/audit-anchor";

const { values } = parseArgs({ options: { records: { type: "string", default: "200000" }, new: { type: "string", default: "1000" } } });
const N = Number(values.records), M = Number(values.new);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "appliance-bench-anchor-"));
try {
  const file = path.join(dir, "audit.jsonl"), anchors = path.join(dir, "anchors", "audit.anchors");
  const write = (n: number, from: number) => {
    const log = new AuditLog(file);
    for (let i = 0; i < n; i++) log.append({ ts: new Date().toISOString(), reqId: `r${from + i}`, key: "k1", route: "POST /v1/chat/completions", status: 200, model: "tiny", promptTokens: 12, completionTokens: 8, decisions: [], ms: 40, client: "127.0.0.1" });
    log.close();
  };
  write(N, 0);
  anchorAudit(file, anchors, { full: true });
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const inc: number[] = [], full: number[] = [];
  for (let r = 0; r < 5; r++) {
    write(M, N + r * M);
    const t0 = performance.now();
    const a = anchorAudit(file, anchors);
    inc.push(performance.now() - t0);
    if (!a.incremental || !a.verify.ok || a.verify.records !== M) throw new Error(`expected an incremental run over ${M} records: ${JSON.stringify(a.verify)}`);
    const t1 = performance.now();
    const b = anchorAudit(file, anchors, { full: true });
    full.push(performance.now() - t1);
    if (b.incremental || !b.verify.ok) throw new Error("expected a full run");
  }
  const mb = (fs.statSync(file).size / 2 ** 20).toFixed(1);
  console.log(`audit anchor over a ${mb} MiB log (${N + 5 * M} records), ${M} new records per run, medians of 5:`);
  console.log(`  incremental (appliance-anchor.timer): ${median(inc).toFixed(1)} ms`);
  console.log(`  --full (daily check):                 ${median(full).toFixed(1)} ms`);
  console.log(`  load average: ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
