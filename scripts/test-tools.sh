#!/usr/bin/env bash
# The system tools the tests run for real: systemd-analyze (unit verification and
# the security score), apparmor_parser (profile syntax), python3 (plistlib),
# curl + openssl (the README's request-signing example) and strace (the unit's
# syscall filter against the syscalls the server really makes) and systemd-nspawn
# (tests/live boots a real systemd in a container), logrotate (the rendered config, live), redis-server
# (two instances sharing one Redis enforce one budget: tests/guards/redis-*). Installs them
# from Debian's packages when missing and we are root; otherwise says what to install.
set -euo pipefail
missing=()
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v apparmor_parser >/dev/null 2>&1 || missing+=(apparmor)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v strace >/dev/null 2>&1 || missing+=(strace)
command -v systemd-nspawn >/dev/null 2>&1 || missing+=(systemd-container)
command -v logrotate >/dev/null 2>&1 || missing+=(logrotate)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
/usr/bin/python3 -c 'import prometheus_client.parser' >/dev/null 2>&1 || missing+=(python3-prometheus-client) # the official exposition parser (tests/ops/metrics)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing test tools: ${missing[*]}" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "the tests need: ${missing[*]} (Debian: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
