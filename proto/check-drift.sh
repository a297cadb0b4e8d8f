#!/usr/bin/env bash
# check-drift.sh regenerates the protos' Go code into a temporary folder and
# compares it with the committed files; it exits non-zero, listing the
# differences, when they drifted apart (run proto/generate.sh to fix).
set -euo pipefail

proto_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$proto_dir/generate.sh" "$tmp" >/dev/null

status=0
# Every generated file must match its committed copy ...
while IFS= read -r f; do
  rel="${f#"$tmp"/}"
  if ! diff -u "$proto_dir/$rel" "$f" >"$tmp.diff" 2>&1; then
    echo "proto drift: $rel differs from a fresh generation:" >&2
    cat "$tmp.diff" >&2
    status=1
  fi
done < <(find "$tmp" -type f \( -name '*.go' -o -name '*.binpb' \) | sort)
rm -f "$tmp.diff"
# ... and no committed generated file may lack its .proto source.
while IFS= read -r f; do
  rel="${f#"$proto_dir"/}"
  if [[ ! -f "$tmp/$rel" ]]; then
    echo "proto drift: $rel is committed but no longer generated" >&2
    status=1
  fi
done < <(find "$proto_dir" -type f \( -name '*.pb.go' -o -name '*.binpb' \) | sort)

if [[ $status -ne 0 ]]; then
  echo "proto drift: run proto/generate.sh (make proto) and commit the result" >&2
else
  echo "proto: generated code matches the .proto files"
fi
exit $status
