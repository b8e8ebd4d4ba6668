/**
 * pino straight to stdout (journald and launchd capture it). No transports:
 * they run in worker threads, which break inside the compiled binary.
 */
import pino, { type Logger, type DestinationStream } from "pino";
import { secretRedactor } from "./redact";

export type { Logger };

/** Paths that may carry secrets; replaced before a line is serialised (redact.ts: what pino's `redact` did, cheaper). */
export const REDACT = [
  "authorization", "*.authorization", "headers.authorization", "headers[\"x-api-key\"]",
  "key", "*.key", "secret", "*.secret", "apiKey", "*.apiKey",
];
export const CENSOR = "[redacted]";
const redact = secretRedactor(REDACT, CENSOR);

export function createLogger(level: string, dest?: DestinationStream): Logger {
  const log = pino(
    {
      level,
      base: { app: "appliance" },
      formatters: { log: redact },
      hooks: {
        // The objects a message interpolates (%j, %o, %O, extra arguments) or is: redacted as a line's fields are.
        logMethod(args, method) {
          for (let i = 1; i < args.length; i++) if (args[i] !== null && typeof args[i] === "object") args[i] = redact(args[i]);
          return method.apply(this, args);
        },
      },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    // `dest: 1`, not `fd: 1`: pino reads `dest`, and without it asks process.stdout for its fd, and making that stream
    // loads Bun's node:stream (~4 ms of every start; util/node-builtins.ts). The same descriptor either way.
    dest ?? pino.destination({ dest: 1, sync: true }),
  );
  // A child's bindings go into every line it writes, and pino's formatters do not reach them (it resets the bindings
  // formatter for children), so they pass the redactor here (setBindings' too), as pino's `redact` option covered
  // them. Children are made from this instance (Object.create), so theirs are these too.
  const child = log.child, setBindings = log.setBindings;
  log.child = function (this: Logger, bindings, options) { return child.call(this, redact(bindings), options); } as Logger["child"];
  log.setBindings = function (this: Logger, bindings) { setBindings.call(this, redact(bindings)); };
  return log;
}

/**
 * `log`, or a child of it that also writes `level` lines where its own level is above that: for lines that must reach
 * the log whatever the operator's level (the audit checkpoints' journal copy: at `logLevel` warn they were dropped,
 * and with them the one copy a rewrite of the state dir cannot reach). A silent logger stays silent.
 */
export function atLeast(log: Logger, level: pino.Level): Logger {
  return log.level !== "silent" && log.levels.values[log.level]! > log.levels.values[level]! ? log.child({}, { level }) : log;
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger = (): Logger => pino({ level: "silent" });
