#!/usr/bin/env bash
# build-kdi.sh builds kafka-delta-ingest (KDI) for `make bench-peers KDI=...` (issue 17, item 5).
# KDI is not in the Rust crate registry and its repository has no Cargo.lock, so the build uses
# the lock file pinned in bench/peers/kdi/Cargo.lock (resolved for the commit in
# bench/peers/kdi/COMMIT). Its code is never copied into plantlake: it is built where it was fetched.
#
# Usage: scripts/build-kdi.sh SOURCE
#   SOURCE is KDI's source folder (github.com/delta-io/kafka-delta-ingest, checked out or unpacked)
#   or its bare git directory (HEAD is then unpacked into $PLANTLAKE_CACHE/kdi/src-<commit>).
# The last line printed is the binary's path; <binary>.commit beside it names the commit.
#
# `--features s3` because KDI refuses to build without s3 or azure. librdkafka is the one bundled
# with rdkafka-sys (Debian 12's librdkafka is too old to link dynamically). About 21 minutes on
# 2 cores; run at nice 19 so that it yields the cores to other work.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
pinned_lock="$here/bench/peers/kdi/Cargo.lock"
pinned_commit=$(cat "$here/bench/peers/kdi/COMMIT")
src=${1:?usage: scripts/build-kdi.sh SOURCE (KDI source folder or bare git dir)}
commit=""
if [[ -f "$src/HEAD" && -d "$src/objects" ]]; then
  commit=$(git --git-dir="$src" rev-parse HEAD)
  dir="${PLANTLAKE_CACHE:-$HOME/.cache/plantlake}/kdi/src-$commit"
  if [[ ! -f "$dir/Cargo.toml" ]]; then
    mkdir -p "$dir"
    git --git-dir="$src" archive HEAD | tar -x -C "$dir"
  fi
  src=$dir
elif [[ -d "$src/.git" ]]; then
  commit=$(git -C "$src" rev-parse HEAD)
fi
if [[ ! -f "$src/Cargo.toml" ]] || ! grep -q '^name = "kafka-delta-ingest"' "$src/Cargo.toml"; then
  echo "build-kdi: $src is not kafka-delta-ingest's source" >&2
  exit 1
fi
if ! command -v cargo >/dev/null; then
  echo "build-kdi: cargo is missing (Rust >= 1.81 is needed; https://rustup.rs)" >&2
  exit 1
fi
if [[ -n "$commit" && "$commit" != "$pinned_commit" ]]; then
  echo "build-kdi: warning: building $commit, the lock file was resolved for $pinned_commit" >&2
fi
cp "$pinned_lock" "$src/Cargo.lock"
start=$(date +%s)
(cd "$src" && nice -n 19 cargo build --release --locked --features s3)
bin="$src/target/release/kafka-delta-ingest"
echo "${commit:-$pinned_commit (assumed: the source has no git metadata)}" > "$bin.commit"
echo "build-kdi: built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
