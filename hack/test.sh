#!/usr/bin/env bash
# The whole test suite: generated code up to date, gofmt, go vet, the
# dependency-direction check, every test with the race detector (our own
# CRI suite, test/critest, among them), then the upstream CRI conformance
# suite against the daemon.
# Needs root (real overlay mounts, runc) and the packages of hack/deps.sh,
# which hack/preflight.sh checks first.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "hack/test.sh: the tests mount filesystems and run containers: run as root" >&2
	exit 1
fi

# runc and crun set the propagation of "/" in a container's mount namespace,
# which needs the root to be a mount point: in a chroot it is not, and every
# container fails ("mount /, flags: 0x84000: invalid argument"). There the
# suite runs in a mount namespace of its own, chrooted into a bind mount of
# this root.
if ! mountpoint -q / && [ -z "${CRI_RUNTIME_TEST_ROOT_BOUND:-}" ]; then
	echo "hack/test.sh: / is not a mount point (a chroot): the suite runs in a mount namespace whose root is a bind mount of this one" >&2
	exec unshare --mount --propagation unchanged env CRI_RUNTIME_TEST_ROOT_BOUND=1 bash -c '
		set -e
		root=$(mktemp -d)
		mount --rbind / "$root"
		mount --make-rprivate "$root"
		exec chroot "$root" bash -c "cd \"\$0\" && exec hack/test.sh" "$PWD"'
fi

echo "--- preflight"
hack/preflight.sh
# Whatever a test would skip for lack of a tool, a kernel feature or a
# registry fails the run instead: CI proves the whole suite, not a part.
export CRI_RUNTIME_TEST_STRICT=1

echo "--- generated code"
hack/genproto.sh --check
echo "--- gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted" >&2
	exit 1
fi
echo "--- go vet"
go vet ./...
echo "--- go test"
go test -race -count=1 -timeout 40m ./...
echo "--- fuzz: every fuzz target for 4s (longer by hand: hack/fuzz.sh 10m)"
hack/fuzz.sh 4s
echo "--- upstream CRI conformance (cri-tools critest v1.37.0)"
# Built from the Go module proxy once (cached), against the daemon built
# from this tree, with every image it pulls mirrored on loopback; the specs
# it skips, and why, are listed at the top of hack/critest/run.sh.
hack/critest/run.sh cri-runtime
