/**
 * The unit's seccomp filter against reality: run the real binary under strace
 * through load, a streamed chat, embeddings and shutdown, and check every
 * system call it made is allowed by the SystemCallFilter= lines of
 * systemd/appliance.service (expanded by the real systemd-analyze).
 */
import { expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { builtBinary, tinyModel, tmpDir } from "../helpers";

const unit = fs.readFileSync(path.join(import.meta.dir, "..", "..", "systemd", "appliance.service"), "utf8");

function expand(group: string, seen = new Set<string>()): Set<string> {
  const out = new Set<string>();
  if (seen.has(group)) return out;
  seen.add(group);
  const text = Bun.spawnSync(["systemd-analyze", "syscall-filter", group], { stderr: "ignore" }).stdout.toString();
  for (const m of text.matchAll(/^ {4}([@a-z0-9_-]+)/gm)) { // group names have hyphens (@file-system)
    if (m[1]!.startsWith("@")) for (const s of expand(m[1]!, seen)) out.add(s);
    else out.add(m[1]!);
  }
  return out;
}

/**
 * The calls the unit lets through, the way systemd reads SystemCallFilter= lines: the first line decides the mode
 * (an allow list, or with `~` a deny list) and each later line adds its calls to that set or takes them out of it,
 * in order (systemd.exec: an allow list of read and write followed by `~write` allows read only).
 */
function filterAllows(lines: string[], expandGroup: (group: string) => Set<string>): (call: string) => boolean {
  const allowList = !lines[0]?.startsWith("~");
  const set = new Set<string>();
  for (const line of lines) {
    const deny = line.startsWith("~");
    for (const item of line.replace(/^~/, "").split(/\s+/).filter(Boolean)) {
      for (const n of item.startsWith("@") ? expandGroup(item) : [item]) {
        if (deny === !allowList) set.add(n); // same kind as the first line: widens its set
        else set.delete(n);
      }
    }
  }
  return (call) => set.has(call) === allowList;
}

test("the filter model follows systemd's order: a later line takes calls out of the first line's set", () => {
  const groups = (g: string) => new Set(g === "@a" ? ["read", "write", "open"] : []);
  const allow = filterAllows(["@a", "~write", "write2"], groups);
  expect(["read", "write", "open", "write2", "close"].map(allow)).toEqual([true, false, true, true, false]);
  // An allow-back after a deny line (a drop-in's SystemCallFilter=sched_setaffinity after ~@resources) counts.
  const back = filterAllows(["@a", "~open", "open"], groups);
  expect(back("open")).toBe(true);
  const deny = filterAllows(["~@a", "write"], groups);
  expect(["read", "write", "close"].map(deny)).toEqual([false, true, true]);
});

test("every system call the server makes is allowed by the unit's SystemCallFilter", async () => {
  const lines = [...unit.matchAll(/^SystemCallFilter=(.*)$/gm)].map((m) => m[1]!.trim());
  const allows = filterAllows(lines, (g) => expand(g));
  const allowed = new Set([...expand("@system-service")].filter(allows));
  expect(allowed.size).toBeGreaterThan(100);

  const bin = await builtBinary();
  const dir = tmpDir("appliance-strace-");
  const stateDir = path.join(dir, "state");
  const run = (args: string[]) => Bun.spawnSync([bin, ...args], { stdout: "pipe", stderr: "pipe" });
  expect(run(["models", "add", await tinyModel(), "--state-dir", stateDir]).exitCode).toBe(0);
  const key = run(["keys", "create", "--name", "s", "--state-dir", stateDir]).stdout.toString().trim();
  const trace = path.join(dir, "trace.log");
  const strace = Bun.spawn(["strace", "-f", "-qq", "-o", trace, bin, "serve", "--state-dir", stateDir, "--port", "0"], { stdout: "pipe", stderr: "pipe" });
  const reader = strace.stdout.getReader();
  let out = "";
  while (!/"msg":"listening"/.test(out)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`server did not start under strace: ${out}`);
    out += new TextDecoder().decode(value);
  }
  void (async () => { while (!(await reader.read()).done); })();
  const base = `http://127.0.0.1:${/"port":(\d+)/.exec(out)![1]}`;
  const headers = { authorization: `Bearer ${key}`, "content-type": "application/json" };
  await (await fetch(`${base}/v1/chat/completions`, { method: "POST", headers, body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 8, stream: true }) })).text();
  await (await fetch(`${base}/v1/embeddings`, { method: "POST", headers, body: JSON.stringify({ model: "tiny", input: "hi" }) })).text();
  const server = Bun.spawnSync(["pgrep", "-P", String(strace.pid)]).stdout.toString().trim().split("\n")[0]!;
  process.kill(Number(server), "SIGTERM");
  await strace.exited;

  const used = new Set([...fs.readFileSync(trace, "utf8").matchAll(/^\d+ +([a-z_0-9]+)\(/gm)].map((m) => m[1]!));
  expect(used.size).toBeGreaterThan(30);
  const blocked = [...used].filter((s) => !allows(s));
  expect(blocked).toEqual([]);
});

// ProtectProc=invisible + ProcSubset=pid hide most of /proc (cpuinfo, meminfo, vmstat…). Reproduce that with a
// private procfs mounted subset=pid in a new mount+pid namespace, and check the server still loads and answers.
const canUnshare = Bun.spawnSync(["unshare", "--mount", "--pid", "--fork", "true"], { stderr: "ignore" }).exitCode === 0;
test.skipIf(!canUnshare)("the server works with /proc reduced as the unit's ProcSubset=pid does", async () => {
  const bin = await builtBinary();
  const dir = tmpDir("appliance-proc-");
  const stateDir = path.join(dir, "state");
  expect(Bun.spawnSync([bin, "models", "add", await tinyModel(), "--state-dir", stateDir]).exitCode).toBe(0);
  const key = Bun.spawnSync([bin, "keys", "create", "--name", "p", "--state-dir", stateDir]).stdout.toString().trim();
  const script = `set -e
mount -t proc -o subset=pid,hidepid=invisible proc /proc
test ! -e /proc/cpuinfo
: > "$DIR/out.log" # before the server's shell opens it: under load the first grep came first ("No such file" on stderr)
"$BIN" serve --state-dir "$STATE" --port 0 > "$DIR/out.log" 2>&1 &
for i in $(seq 1 1200); do grep -q '"msg":"listening"' "$DIR/out.log" && break; sleep 0.05; done
PORT=$(grep -o '"port":[0-9]*' "$DIR/out.log" | head -1 | cut -d: -f2)
curl -sS --fail-with-body "http://127.0.0.1:$PORT/v1/chat/completions" -H "authorization: Bearer $KEY" -H 'content-type: application/json' \\
  -d '{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":4}'
kill %1; wait`;
  const r = Bun.spawn(["unshare", "--mount", "--pid", "--fork", "bash", "-c", script], {
    env: { ...process.env, BIN: bin, STATE: stateDir, DIR: dir, KEY: key }, stdout: "pipe", stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([new Response(r.stdout).text(), new Response(r.stderr).text(), r.exited]);
  expect({ code, err }).toEqual({ code: 0, err: "" });
  expect(JSON.parse(out).object).toBe("chat.completion");
  expect(fs.readFileSync(path.join(dir, "out.log"), "utf8")).not.toContain('"level":50');
});
