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

# runc and crun set the propagation of "/" in a container's mount namespace
# and pivot_root from it, which needs the root to be a mount point: in a
# chroot it is not, and every container fails ("mount /, flags: 0x84000:
# invalid argument"). A bind mount of the chroot somewhere inside it is not
# enough either: runc exec enters the container's mount namespace at the
# namespace's root, the host's, not the container's. So, in a mount
# namespace of its own, the suite leaves the chroot for the host's root
# (perl-base, in every Debian, has chroot), mounts the chroot over it, and
# re-enters the namespace, whose root is then the chroot, a mount point.
if ! mountpoint -q / && [ -z "${CRI_RUNTIME_TEST_ROOT_BOUND:-}" ]; then
	echo "hack/test.sh: / is not a mount point (a chroot): the suite runs in a mount namespace whose root it is" >&2
	exec 9</
	exec unshare --mount --propagation unchanged env CRI_RUNTIME_TEST_ROOT_BOUND=1 perl -e '
		my $dir = shift;
		mkdir "/tmp/.cri-runtime-root";
		chdir "/" or die "chdir: $!";
		chroot "/tmp/.cri-runtime-root" or die "chroot: $!";
		chdir ".." for 1 .. 256;
		chroot "." or die "chroot to the host root: $!";
		system("mount", "--rbind", "/proc/self/fd/9", "/") == 0 or die "bind mount of the chroot over /";
		system("mount", "--make-rprivate", "/") == 0 or die "make / private";
		exec "nsenter", "--mount=/proc/self/ns/mnt", "/bin/sh", "-c", "cd \"\$0\" && exec hack/test.sh", $dir or die "nsenter: $!";
	' "$PWD"
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
