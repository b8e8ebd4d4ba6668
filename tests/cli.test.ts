/** The CLI's contracts: keys shown once and never listed, refusals with exit codes, and the one error mapper. */
import { expect, spyOn, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { AppError } from "../src/errors";
import { main } from "../src/main";
import { dirFlags } from "../src/config/load";
import { defaultStateDir } from "../src/config/schema";
import { toAppError, toResponse } from "../src/server/errors";
import { AuditLog } from "../src/log/audit";
import { memoryLogger, tinyModel, tmpDir } from "./helpers";

async function capture(argv: string[]) {
  const out: string[] = [], errs: string[] = [];
  const log = spyOn(console, "log").mockImplementation((...a: unknown[]) => { out.push(a.join(" ")); });
  const err = spyOn(console, "error").mockImplementation((...a: unknown[]) => { errs.push(a.join(" ")); });
  try {
    const code = await main(argv);
    return { code, out: out.join("\n"), err: errs.join("\n") };
  } finally {
    log.mockRestore();
    err.mockRestore();
  }
}

test("keys: create prints the key once; list never shows it; revoke and rotate", async () => {
  const stateDir = tmpDir();
  const created = await capture(["keys", "create", "--name", "ci", "--scopes", "chat,models", "--expires", "30d", "--rpm", "10", "--state-dir", stateDir]);
  expect(created.code).toBe(0);
  const key = created.out.trim();
  expect(key).toMatch(/^apk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
  const list = await capture(["keys", "list", "--json", "--state-dir", stateDir]);
  expect(list.out).not.toContain(key.slice(21));
  expect(JSON.parse(list.out)[0]).toMatchObject({ name: "ci", scopes: ["chat", "models"], rpm: 10 });
  const rotated = await capture(["keys", "rotate", "ci", "--grace", "1h", "--state-dir", stateDir]);
  expect(rotated.out.trim()).not.toBe(key);
  // The old secret's grace is shown (operator run: nothing said the old key still worked), never its hash.
  const graced = await capture(["keys", "list", "--state-dir", stateDir]);
  expect(graced.out).toMatch(/^ci +active .* old secret valid until \d{4}-\d\d-\d\dT/m);
  const json = JSON.parse((await capture(["keys", "list", "--json", "--state-dir", stateDir])).out)[0];
  expect(Date.parse(json.previousValidUntil) - Date.now()).toBeGreaterThan(3_500_000);
  expect(JSON.stringify(json)).not.toContain("hash");
  expect((await capture(["keys", "revoke", "ci", "--state-dir", stateDir])).code).toBe(0);
  expect((await capture(["keys", "list", "--state-dir", stateDir])).out).not.toContain("old secret");
  expect((await capture(["keys", "create", "--name", "bad", "--scopes", "root", "--state-dir", stateDir])).code).toBe(2);
  expect((await capture(["keys", "create", "--state-dir", stateDir])).code).toBe(2);
});

test("keys and audit take --config FILE (as the README and the 'run this as root' message offer); subcommand and flag errors say what exists", async () => {
  const stateDir = tmpDir();
  const file = path.join(tmpDir(), "own.json");
  fs.writeFileSync(file, JSON.stringify({ stateDir }));
  expect((await capture(["keys", "create", "--name", "mine", "--config", file])).code).toBe(0);
  expect(fs.readFileSync(path.join(stateDir, "keys.json"), "utf8")).toContain('"mine"');
  expect(JSON.parse((await capture(["keys", "list", "--json", "--config", file])).out)[0]).toMatchObject({ name: "mine" });
  // --config beside --state-dir is still read: one that cannot be is an error, as for every command.
  expect((await capture(["keys", "list", "--state-dir", stateDir, "--config", path.join(stateDir, "missing.json")])).code).toBe(2);
  const audit = await capture(["audit", "verify", "--config", file]);
  expect(audit.out + audit.err).toContain(path.join(stateDir, "audit.jsonl"));
  const none = await capture(["keys"]);
  expect([none.code, none.err]).toEqual([2, expect.stringContaining("keys needs a subcommand: create, list, revoke, rotate")]);
  const typo = await capture(["models", "lst", "--state-dir", stateDir]);
  expect([typo.code, typo.err]).toEqual([2, expect.stringContaining("unknown models subcommand 'lst' (known: add, list, remove)")]);
  const flag = await capture(["keys", "list", "--bogus", "--state-dir", stateDir]);
  expect(flag.code).toBe(2);
  expect(flag.err).toContain("unknown option '--bogus'");
  expect(flag.err).not.toContain("positional argument");
});

test("start-up hints name the state dir the server was started with, so the printed command acts on it", async () => {
  const stateDir = tmpDir();
  // No models is a configuration state (exit 2: the unit does not retry it), not a failed integrity check (exit 1,
  // an alert): removing the last model raised 5 tampering alerts on the installed service (operator run).
  const alerts = tmpDir();
  const before = process.env.LOGS_DIRECTORY;
  process.env.LOGS_DIRECTORY = alerts;
  const r = await capture(["serve", "--state-dir", stateDir, "--port", "0"]).finally(() => {
    if (before === undefined) delete process.env.LOGS_DIRECTORY; else process.env.LOGS_DIRECTORY = before;
  });
  expect(r.code).toBe(2);
  expect(fs.existsSync(path.join(alerts, "verify-alerts.log"))).toBe(false);
  expect(r.err).toContain(`Add one with: appliance models add FILE --state-dir ${stateDir}`);
  expect(dirFlags({ stateDir: defaultStateDir(), modelsDir: "" }, true)).toBe("");
  expect(dirFlags({ stateDir: "/srv/my state", modelsDir: "/srv/m" })).toBe(" --state-dir '/srv/my state'");
  expect(dirFlags({ stateDir: "/srv/s", modelsDir: "/srv/m" }, true)).toBe(" --state-dir /srv/s --models-dir /srv/m");
  expect(dirFlags({ stateDir: "/srv/s", modelsDir: "/srv/s/models" }, true)).toBe(" --state-dir /srv/s");
});

test("serve refuses a keys file that others can read, naming the file and the chmod to run", async () => {
  const stateDir = tmpDir();
  await capture(["keys", "create", "--name", "k", "--state-dir", stateDir]);
  await capture(["models", "add", await tinyModel(), "--state-dir", stateDir]);
  const file = path.join(stateDir, "keys.json");
  fs.chmodSync(file, 0o644);
  const errors: string[] = [];
  const err = spyOn(console, "error").mockImplementation((...a: unknown[]) => { errors.push(a.join(" ")); });
  const out = spyOn(process.stdout, "write").mockImplementation(() => true);
  try {
    // 2, a config error the unit does not restart (it was 1: ten restarts, each failing the same way)
    expect(await main(["serve", "--state-dir", stateDir, "--port", "0"])).toBe(2);
  } finally {
    err.mockRestore();
    out.mockRestore();
  }
  expect(errors.join("\n")).toContain(`${file} is readable by group or others (mode 644); run: chmod 600 ${file}`);
});

test("the error mapper: an unexpected error becomes a 500 naming only the request id; the stack goes to the log", async () => {
  const { log, lines } = memoryLogger();
  const e = toAppError("UNKNOWN", new Error("ENOENT /srv/secret/path.gguf at Object.<anonymous>"), "req_abc", log);
  expect(e.status).toBe(500);
  const body = await toResponse(e).json() as { error: { message: string; type: string; code: string } };
  expect(body.error.message).toBe("The server had an error while processing your request (request id req_abc).");
  expect(body.error.type).toBe("server_error");
  expect(JSON.stringify(lines)).toContain("/srv/secret/path.gguf"); // for the operator, never the client
  expect(toAppError("UNKNOWN", new AppError("x", 418, "invalid_request_error"), "r", log).status).toBe(418);
});

// Operator run (live service): `models add` over an existing name replaced the model saying only "added"; removing
// the last one said nothing of the service that then would not start; neither said that a running server keeps
// serving the models it started with until it is restarted.
test("models: a replacement says what it replaced; the last removal says serve will not start; a running server is named", async () => {
  const stateDir = tmpDir();
  const [a, b] = [await tinyModel(), await tinyModel({ seed: 43 })];
  const first = await capture(["models", "add", a, "--name", "m", "--state-dir", stateDir]);
  expect(first.out).toContain("added as model 'm'");
  const sha = first.out.split(/\s+/)[0]!;
  const again = await capture(["models", "add", b, "--name", "m", "--state-dir", stateDir]);
  expect([again.code, again.out]).toEqual([0, expect.stringContaining(`replaced model 'm' (was sha256 ${sha})`)]);
  expect(again.err).toBe(""); // no server here
  const running = new AuditLog(path.join(stateDir, "audit.jsonl")); // what a server on this state dir holds
  try {
    const removed = await capture(["models", "remove", "m", "--state-dir", stateDir]);
    expect([removed.code, removed.out]).toEqual([0, "removed m"]);
    expect(removed.err).toContain("no models left: serve (and the installed service) will not start");
    expect(removed.err).toContain("a server is running on this state dir: it serves the models it started with until it is restarted");
  } finally { running.close(); }
});
