/**
 * sd_notify(3) for `Type=notify`: systemd calls the service started only when
 * serve says READY=1, i.e. once every model is verified and loaded and the port
 * is bound. A no-op outside systemd (no $NOTIFY_SOCKET).
 */
import { sendDatagram } from "../util/unix-datagram";

export function sdNotify(state: Record<string, string | number>, env = process.env): boolean {
  const socket = env.NOTIFY_SOCKET;
  if (!socket) return false;
  return sendDatagram(socket, Object.entries(state).map(([k, v]) => `${k}=${v}`).join("\n"));
}

export interface StartKeepalive {
  /** The start moved on (bytes hashed, a phase begun): keeps the extensions coming; the status is shown by systemctl. */
  progress(status?: string): void;
  /** Ends the extensions (ready, or the start failed). */
  stop(): void;
}

export interface KeepaliveOptions {
  /** How far each EXTEND_TIMEOUT_USEC reaches, and how long the start may go without progress before they stop. */
  windowMs?: number;
  env?: NodeJS.ProcessEnv;
  now?: () => number;
  send?: typeof sdNotify;
  /** Runs `tick` every `ms` until the returned function is called (setInterval, unref'd; tests drive it by hand). */
  every?: (tick: () => void, ms: number) => () => void;
}

const intervalOf = (tick: () => void, ms: number) => {
  const timer = setInterval(tick, ms);
  timer.unref?.();
  return () => clearInterval(timer);
};

/**
 * Keeps systemd's start timeout (TimeoutStartSec=) from ending a start that is still working: hashing and
 * loading a big model can take minutes. Sends EXTEND_TIMEOUT_USEC at once and every third of the window for as
 * long as the start reports progress within the window; a start that stalls gets no more extensions, so
 * systemd stops it at most one window after the last progress (or at TimeoutStartSec, whichever is later).
 */
export function startKeepalive(o: KeepaliveOptions = {}): StartKeepalive {
  const env = o.env ?? process.env, now = o.now ?? Date.now, send = o.send ?? sdNotify, windowMs = o.windowMs ?? 60_000;
  if (!env.NOTIFY_SOCKET) return { progress() {}, stop() {} };
  let last = now(), status = "starting", stopped = false;
  const extend = () => {
    if (stopped || now() - last > windowMs) return;
    send({ EXTEND_TIMEOUT_USEC: windowMs * 1000, STATUS: status }, env);
  };
  extend();
  const cancel = (o.every ?? intervalOf)(extend, Math.max(100, Math.floor(windowMs / 3)));
  return {
    progress(s) { last = now(); if (s) status = s; },
    stop() { stopped = true; cancel(); },
  };
}
