/**
 * Why Redis closed a connection Bun's client opened: its reply to a login, read over a plain socket of our own. Bun's
 * RedisClient reports a refused login (a wrong password: WRONGPASS; none where one is required: NOAUTH) as
 * "Connection closed", which reads as a network fault, not the config mistake it is (scale-out run). Asked once per
 * outage, when the reason given is that one; TLS URLs are not probed (the reason stays Bun's).
 */
import type { NetConnectOpts } from "node:net";
import { nodeNet } from "../../util/node-builtins";

/** Redis's error line for a login (AUTH, or PING with no password), e.g. "WRONGPASS invalid username-password pair…"; undefined if it took it or did not answer. */
export function redisRefusal(url: string, password: string | undefined, timeoutMs: number): Promise<string | undefined> {
  const m = /^(redis|valkey)(\+unix)?:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/]*)(\/.*)?$/i.exec(url);
  if (!m) return Promise.resolve(undefined);
  const [, , unix, user, urlPassword, host = "", rest = ""] = m;
  const pass = password ?? (urlPassword ? decodeURIComponent(urlPassword) : undefined);
  const args = pass === undefined ? ["PING"] : ["AUTH", decodeURIComponent(user || "default"), pass];
  const command = `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`;
  const hostPort = /^\[?([^\]]*?)\]?(?::(\d+))?$/.exec(host);
  const target = unix ? { path: rest.split("?")[0]! } : { host: hostPort?.[1] || "127.0.0.1", port: Number(hostPort?.[2] ?? 6379) };
  return new Promise((resolve) => {
    const socket = nodeNet().connect(target as NetConnectOpts);
    let got = "";
    const done = (r: string | undefined) => { clearTimeout(timer); socket.destroy(); resolve(r); };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.on("connect", () => socket.write(command));
    socket.on("data", (d) => {
      got += d.toString("latin1");
      const nl = got.indexOf("\r\n");
      if (nl >= 0) done(got.startsWith("-") ? got.slice(1, nl).slice(0, 200) : undefined);
    });
    socket.on("error", () => done(undefined));
    socket.on("close", () => done(undefined));
  });
}
