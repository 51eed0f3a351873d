#!/usr/bin/env bash
# Regenerates the Go code of every .proto under api/. The generators are
# pinned here and installed into a private GOBIN, so the output only depends
# on this script and the Debian protoc (3.21.x).
#
#   hack/genproto.sh          regenerate
#   hack/genproto.sh --check  regenerate and fail if anything changed
set -euo pipefail
cd "$(dirname "$0")/.."

PROTOC_GEN_GO=v1.36.12
PROTOC_GEN_GO_GRPC=v1.5.1

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
GOBIN=$bin go install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOC_GEN_GO}"
GOBIN=$bin go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@${PROTOC_GEN_GO_GRPC}"
command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler" >&2; exit 1; }

mapfile -t protos < <(find api -name '*.proto' | sort)
PATH="$bin:$PATH" protoc -I api -I /usr/include \
	--go_out=api --go_opt=paths=source_relative \
	--go-grpc_out=api --go-grpc_opt=paths=source_relative \
	"${protos[@]}"

if [ "${1:-}" = "--check" ]; then
	if [ -n "$(git status --porcelain -- api)" ]; then
		git status --porcelain -- api >&2
		git diff --stat -- api >&2
		echo "generated code under api/ is stale: run hack/genproto.sh and commit" >&2
		exit 1
	fi
fi
