#!/usr/bin/env bash
# generate.sh regenerates the Go code of plantlake's protos next to the
# .proto files, with buf and the protoc plugins pinned as Go tools in
# tools/go.mod. Usage: proto/generate.sh [output-dir] (default: proto/).
set -euo pipefail

proto_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools_dir="$(cd "$proto_dir/../tools" && pwd)"
out_dir="${1:-$proto_dir}"
mkdir -p "$out_dir"
out_dir="$(cd "$out_dir" && pwd)"

# tools is deliberately outside go.work; buf and its plugins (run as
# "go tool protoc-gen-*") resolve from tools/go.mod with the workspace off.
export GOWORK=off
cd "$tools_dir"
go tool buf lint "$proto_dir"
go tool buf generate "$proto_dir" --template "$proto_dir/buf.gen.yaml" --output "$out_dir"
# The descriptors with source information (comments), for server reflection.
mkdir -p "$out_dir/plantlake/descriptors"
go tool buf build "$proto_dir" --output "$out_dir/plantlake/descriptors/plantlake.binpb"
