/**
 * Operator run on a live systemd: (1) after `uninstall --purge` and a fresh install, runbook step 4's
 * `appliance audit verify --journal` said BROKEN ("checkpoint … has a wrong MAC (forged or edited)", at
 * "audit.checkpoints line 0"): it read the whole journal, the earlier chain's checkpoints (made with the purged key)
 * included. (2) A fresh install started the service twice (`enable --now`, then `restart`). Driven by the compiled
 * binary as a user would.
 */
import { describe, expect, test } from "bun:test";
import { builtBinary, tinyModel } from "../helpers";
import { curl, journal, printedKey, put } from "./client";
import { bootOrSkip } from "./systemd";

const live = await bootOrSkip("audit-journal.test.ts");
const T = 240_000;

describe.skipIf(!live)("live systemd: the audit chain across a purge and a reinstall", () => {
  const sys = live!;
  const starts = () => journal(sys, "-u", "appliance.service").split("\n").filter((l) => /^Started appliance/.test(l)).length;
  const chat = (key: string) => {
    const r = curl(sys, "http://127.0.0.1:8000/v1/chat/completions", { key, body: { model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 2 } });
    expect(r.status).toBe(200);
  };

  test("install starts the service once; purge, install again: audit verify --journal passes on the new chain", async () => {
    const bin = put(sys, await builtBinary(), "appliance");
    const model = put(sys, await tinyModel(), "tiny.gguf");
    const first = sys.exec([bin, "install", "--model", model], { timeoutMs: T });
    expect(first.code).toBe(0);
    expect(starts()).toBe(1);
    chat(printedKey(first.out));
    // A restart writes a checkpoint, and serve copies every checkpoint to the journal.
    expect(sys.exec(["systemctl", "restart", "appliance.service"], { timeoutMs: T }).code).toBe(0);
    expect(journal(sys, "-u", "appliance.service")).toContain("audit checkpoint");
    expect(sys.exec(["/usr/local/bin/appliance", "audit", "verify", "--journal"]).code).toBe(0);

    expect(sys.exec(["/usr/local/bin/appliance", "uninstall", "--purge"], { timeoutMs: T }).code).toBe(0);
    const again = sys.exec([bin, "install", "--model", model], { timeoutMs: T });
    expect(again.code).toBe(0);
    chat(printedKey(again.out));
    expect(sys.exec(["systemctl", "restart", "appliance.service"], { timeoutMs: T }).code).toBe(0);
    const v = sys.exec(["/usr/local/bin/appliance", "audit", "verify", "--journal"]);
    expect([v.code, v.out]).toEqual([0, expect.stringMatching(/: ok, \d+ records/)]);
    // The earlier chain's checkpoints are still in the journal: only root's purge mark sets them apart.
    expect(journal(sys, "-t", "appliance-audit-chain")).toContain("audit chain ended");
  }, 3 * T);
});
