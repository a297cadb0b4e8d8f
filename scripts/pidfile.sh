# pidfile.sh: sourced by up.sh and down.sh (bash).

# ours <pidfile> <marker>: the pid file names a live process whose command line contains marker (its
# binary's path or its config file). A pid file outlives its process (kill -9, a reboot), and the
# pid may by now be another program's: up.sh would have left the service down thinking it ran, and
# down.sh would have signalled a stranger. A process killed a moment ago stays a zombie (state Z)
# until its parent reaps it, and kill -0 still finds it: `kill -9` then `make up` at once would
# have left the service down.
ours() {
  local pid
  [ -f "$1" ] && pid=$(cat "$1") && [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  ! grep -qE '^State:[[:space:]]+[ZX]' "/proc/$pid/status" 2>/dev/null || return 1
  grep -aqF -- "$2" "/proc/$pid/cmdline" 2>/dev/null # one file, no pipe: pipefail and grep -q's early exit
}
