/**
 * One datagram to a unix socket, for sd_notify ($NOTIFY_SOCKET) and syslog (/dev/log). Bun's
 * dgram has no AF_UNIX, and spawning systemd-notify/logger would need them in the unit's
 * ExecPaths= (and systemd-notify races: its PID is gone before systemd reads the message).
 * So libc's socket/sendto through bun:ffi, from this very process. Linux only; false elsewhere
 * or on any failure (callers treat it as best effort).
 */
import { dlopen, FFIType, ptr } from "bun:ffi";

const AF_UNIX = 1, SOCK_DGRAM = 2, SOCK_CLOEXEC = 0o2000000, MSG_NOSIGNAL = 0x4000;

let libc: ReturnType<typeof open> | null | undefined;
function open() {
  return dlopen("libc.so.6", {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    sendto: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i64 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
  });
}

/** Sends `message` to the unix datagram socket at `socketPath` ("@name" = abstract namespace). */
export function sendDatagram(socketPath: string, message: string): boolean {
  if (process.platform !== "linux" || !socketPath) return false;
  try {
    libc ??= open();
  } catch {
    libc = null;
  }
  if (!libc) return false;
  const name = Buffer.from(socketPath.startsWith("@") ? "\0" + socketPath.slice(1) : socketPath);
  if (name.length > 107) return false;
  const addr = new Uint8Array(110); // struct sockaddr_un: sa_family (u16, host order) + sun_path[108]
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(name, 2);
  const body = Buffer.from(message);
  const fd = libc.symbols.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  try {
    const addrLen = 2 + name.length + (socketPath.startsWith("@") ? 0 : 1);
    return Number(libc.symbols.sendto(fd, ptr(body), body.length, MSG_NOSIGNAL, ptr(addr), addrLen)) === body.length;
  } finally {
    libc.symbols.close(fd);
  }
}
