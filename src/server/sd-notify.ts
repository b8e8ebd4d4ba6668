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
