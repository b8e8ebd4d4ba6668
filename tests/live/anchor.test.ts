/**
 * The audit anchor timer on a live systemd (issue 10 item 3): install enables appliance-anchor.timer (every
 * 5 minutes), each run of appliance-anchor.service verifies only the records written since the last anchor and
 * appends the new head to the root-only anchor file; the daily check walks the whole log; a rewrite the service
 * account makes (emptying its own log) fails the next anchor run with an alert. The timer's own firing is
 * checked by its next elapse (within 5 minutes), not waited for; the runs are started with systemctl, the timer
 * stopped first (a run of its own at a 5-minute boundary once added an anchor between them: CI, 2026-12-06).
 */
import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { builtBinary, tinyModel } from "../helpers";
import { active, curl, journal, printedKey, put, unitProp } from "./client";
import { bootOrSkip } from "./systemd";

const live = await bootOrSkip("anchor.test.ts");

const T = 240_000;
const ANCHORS = "/var/lib/appliance-anchor/audit.anchors";

describe.skipIf(!live)("live systemd: the audit anchor timer", () => {
  const sys = live!;
  let key = "";
  const chats = (n: number) => {
    for (let i = 0; i < n; i++) {
      const r = curl(sys, "http://127.0.0.1:8000/v1/chat/completions", { key, body: { model: "tiny", messages: [{ role: "user", content: `hi ${i}` }], max_tokens: 4 } });
      expect(r.status).toBe(200);
    }
  };
  const anchors = () => fs.readFileSync(path.join(sys.root, ANCHORS.slice(1)), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { seq: number });
  /** Anchors in the file before the hand-started runs (a run of the timer since install). */
  let before = 0;
  const runAnchor = () => {
    const r = sys.exec(["systemctl", "start", "appliance-anchor.service"], { timeoutMs: T });
    return { code: r.code, log: journal(sys, "-u", "appliance-anchor.service", "-n", "5") };
  };

  test("install enables the timer; it is due within 5 minutes", async () => {
    const r = sys.exec([put(sys, await builtBinary(), "appliance"), "install", "--model", put(sys, await tinyModel(), "tiny.gguf")], { timeoutMs: T });
    expect(r.code).toBe(0);
    key = printedKey(r.out);
    expect(active(sys, "appliance-anchor.timer")).toBe("active");
    expect(sys.exec(["systemctl", "list-timers", "--all", "--no-pager"]).out).toContain("appliance-anchor.timer");
    // At a 5-minute boundary the timer may be running its service, its next elapse not yet moved on: wait for it.
    const dueS = await sys.poll("the anchor timer's next run ahead", () => {
      const next = unitProp(sys, "NextElapseUSecRealtime", "appliance-anchor.timer");
      const d = Number(sys.exec(["date", "-d", next, "+%s"]).out.trim()) - Number(sys.exec(["date", "+%s"]).out.trim());
      return d > 0 ? d : undefined;
    });
    console.log(`anchor timer: next run in ${dueS} s`);
    expect(dueS).toBeLessThanOrEqual(5 * 60 + 10);
  }, T);

  test("each run anchors the records written since the last one (reading only those); the daily check walks the whole log", () => {
    // The runs below are started by hand: the timer stopped, so a run it starts at a 5-minute boundary adds no anchor
    // between them (one it ran since install is counted in `before`).
    expect(sys.exec(["systemctl", "stop", "appliance-anchor.timer"], { timeoutMs: T }).code).toBe(0);
    before = fs.existsSync(path.join(sys.root, ANCHORS.slice(1))) ? anchors().length : 0;
    chats(3);
    const first = runAnchor();
    expect(first.code).toBe(0);
    expect(unitProp(sys, "Result", "appliance-anchor.service")).toBe("success");
    const a1 = anchors();
    expect(a1).toHaveLength(before + 1);
    expect(a1.at(-1)!.seq).toBeGreaterThanOrEqual(3);
    expect(sys.exec(["stat", "-c", "%U %a", ANCHORS]).out.trim()).toBe("root 600");
    chats(2);
    const second = runAnchor();
    expect(second.code).toBe(0);
    const a2 = anchors();
    expect(a2).toHaveLength(before + 2); // the file grew by one anchor
    expect(a2.at(-1)!.seq).toBeGreaterThanOrEqual(a1.at(-1)!.seq + 2);
    expect(second.log).toMatch(/anchored record \d+ in \/var\/lib\/appliance-anchor\/audit\.anchors \(\d+ new record\(s\) verified since the last anchor\)/);
    expect(sys.exec(["systemctl", "start", "appliance-verify.service"], { timeoutMs: T }).code).toBe(0);
    expect(journal(sys, "-u", "appliance-verify.service", "-n", "10")).toMatch(/whole log verified|already anchored/);
  }, T);

  test("the service account empties its log: the next anchor run fails and alerts", () => {
    expect(sys.exec(["systemctl", "stop", "appliance.service"], { timeoutMs: T }).code).toBe(0);
    expect(sys.exec(["runuser", "-u", "appliance", "--", "sh", "-c", ": > /var/lib/appliance/audit.jsonl && rm -f /var/lib/appliance/audit.checkpoints"]).code).toBe(0);
    const r = runAnchor();
    expect(r.code).not.toBe(0);
    expect(unitProp(sys, "Result", "appliance-anchor.service")).toBe("exit-code");
    expect(r.log).toMatch(/BROKEN .*records were removed from the end/);
    expect(fs.readFileSync(path.join(sys.root, "var/log/appliance/verify-alerts.log"), "utf8")).toContain("audit anchor");
    expect(anchors()).toHaveLength(before + 2); // nothing anchored over the rewrite
  }, T);
});
