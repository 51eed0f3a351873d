#!/usr/bin/env bash
# Builds the upstream CRI conformance suite and its tools from the Go module
# proxy, as CI does, into a cache directory (once: later calls find them):
#
#   hack/critest/build.sh CACHE_DIR
#
# CACHE_DIR/bin gets:
#   critest  the suite (cri-tools' cmd/critest, a compiled Go test)
#   crictl   the CRI command line, used by run.sh to clean up
#   ginkgo   the runner critest execs for --parallel > 1
# The version is CRI_TOOLS_VERSION (default v1.37.0); ginkgo is the one in
# cri-tools' go.mod, so the runner matches the suite.
set -euo pipefail
cache=${1:?usage: hack/critest/build.sh CACHE_DIR}
version=${CRI_TOOLS_VERSION:-v1.37.0}
mkdir -p "$cache/bin"
cache=$(cd "$cache" && pwd)
bin=$cache/bin
stamp=$bin/.cri-tools-version
if [ -x "$bin/critest" ] && [ -x "$bin/crictl" ] && [ -x "$bin/ginkgo" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
	exit 0
fi

# The module cache is read-only: build in a writable copy, outside any
# module of ours (a go.work or go.mod above it would capture the build).
src=$(go mod download -json "sigs.k8s.io/cri-tools@$version" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
[ -d "$src" ] || { echo "build.sh: go mod download sigs.k8s.io/cri-tools@$version gave no directory" >&2; exit 1; }
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
cp -r "$src" "$work/cri-tools"
chmod -R u+w "$work/cri-tools"
cd "$work/cri-tools"
export GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0
ldflags="-X sigs.k8s.io/cri-tools/pkg/version.Version=$version"
go build -trimpath -ldflags "$ldflags" -o "$bin/crictl" ./cmd/crictl
go test -c -trimpath -ldflags "$ldflags" -o "$bin/critest" ./cmd/critest
go build -trimpath -o "$bin/ginkgo" github.com/onsi/ginkgo/v2/ginkgo
echo "$version" > "$stamp"
"$bin/critest" --version 2>/dev/null | grep -m1 'critest version'
