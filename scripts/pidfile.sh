# pidfile.sh: sourced by up.sh and down.sh (bash): is a process ours, has it started.

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

# serving <pid> <log> <offset>: waits until process pid writes, past byte offset of log, the line a
# service logs once it has bound its ports (msg=serving), and fails if the process ends first or
# a minute passes. A port held by another process (a service left from another checkout, say)
# makes the new service exit at once; a check of the port alone would have taken the other
# process's answer for the service's, and make up said all was up with a service down.
serving() {
  local i
  for ((i = 0; i < 600; i++)); do
    # no pipe: pipefail would count tail's SIGPIPE after grep -q's early exit
    grep -Eq 'msg="?serving|"msg":"serving"' < <(tail -c +"$(($3 + 1))" "$2" 2>/dev/null) && return 0
    kill -0 "$1" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
