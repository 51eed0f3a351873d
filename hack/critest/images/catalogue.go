// Package images is the catalogue of the images that the upstream CRI
// conformance suite (cri-tools v1.37.0 critest) pulls, and the test that
// builds them from this machine's busybox and the stub program, pushes them
// to a loopback registry under the exact repository paths critest uses, and
// writes the hosts.toml files that make a runtime pull them from there.
//
// critest pulls from registry.k8s.io, k8s.gcr.io and gcr.io; none of that is
// reachable here, and no test sends traffic off the machine. Run by
// hack/critest/run.sh as
//
//	go test -run '^TestMirror$' ./hack/critest/images -args \
//	    -registry 127.0.0.1:PORT -hosts-dir DIR -busybox PATH
//
// and, without flags, by go test ./... as a test of the catalogue itself
// (a registry of its own, the stub programs run, the images checked
// against what critest expects of them).
//
// What is not mirrored: critest pulls one image by an upstream digest
// (Unmirrorable); no image built here can have that digest.
package images

import (
	"runtime"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Path is the PATH of every image but pause.
const Path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// SandboxImage is the pause image the harness configures as the runtime's
// sandbox (pod infra) image. It is not the pause:3.9 critest pulls and
// removes in its image tests, and must not be the same image: those tests
// count the tags of that image.
const SandboxImage = "registry.k8s.io/pause:3.10.2"

// Unmirrorable are the references critest pulls that no mirror can serve,
// with why.
var Unmirrorable = map[string]string{
	"gcr.io/k8s-staging-cri-tools/test-image-digest@sha256:9700f9a2f5bf2c45f2f605a0bd3bce7cf37420ec9d3ed50ac2758413308766bf": "" +
		"pinned to the digest of the upstream manifest; an image built here has another digest " +
		"(Image Manager: public image with digest should be pulled and removed)",
}

// Image is one image of the catalogue.
type Image struct {
	// Refs are the references critest pulls it by, host included; the
	// image is pushed under each.
	Refs []string
	// Why is what critest does with it and so what it must hold.
	Why string
	// Busybox puts the image on the busybox base layer (busybox, its
	// applets as hard links in /bin, the stub's applets busybox lacks,
	// passwd and group as in the busybox image); otherwise the image has
	// only its own layer.
	Busybox bool
	// Files are the entries of the image's own layer.
	Files []File
	// Config is the image's config (Env defaults to Path).
	Config ocispec.ImageConfig
	// Index pushes it as a one-platform index, as upstream publishes a
	// multi-platform list; otherwise as a manifest.
	Index bool
	// Docker uses the Docker schema 2 media types (as docker push does for
	// registry.k8s.io's images); otherwise OCI.
	Docker bool
}

// File is an entry of an image's own layer.
type File struct {
	Path    string // in the image, no leading "/"
	Content string // of a regular file
	Dir     bool
	// Symlink makes a symbolic link to this target.
	Symlink string
	// Stub makes a copy of the stub program (Mode 0o755 unless set).
	Stub bool
	Mode int // permission bits, with 0o4000 for setuid; 0: 0o644 or 0o755
	UID  int
}

// stubLink is the stub program as name, through a symlink to its copy in
// the busybox base layer.
func stubLink(path string) File { return File{Path: path, Symlink: "/bin/critest-stub"} }

const (
	staging = "gcr.io/k8s-staging-cri-tools/"
	e2e     = "registry.k8s.io/e2e-test-images/"
)

// userImage is busybox with a USER, as images/image-user of cri-tools.
func userImage(name, user string) Image {
	return Image{
		Refs:    []string{staging + name + ":latest"},
		Why:     "ImageStatus must report USER " + user + " as uid or username (Image Manager: image status get image fields should not have Uid|Username empty)",
		Busybox: true, Index: true,
		Config: ocispec.ImageConfig{User: user, Cmd: []string{"sh"}},
	}
}

// testImage is busybox with an empty file /name, as images/image-test of
// cri-tools: each name is a different image.
func testImage(name string, refs ...string) Image {
	return Image{
		Refs:    refs,
		Why:     "pulled, listed, inspected by every kind of reference and removed (Image Manager, Image Consistency, Image Volume)",
		Busybox: true, Index: true,
		Files:  []File{{Path: name}},
		Config: ocispec.ImageConfig{Cmd: []string{"sh"}},
	}
}

// Catalogue is every image critest pulls, but Unmirrorable.
func Catalogue() []Image {
	nginx := ocispec.ImageConfig{
		Cmd:          []string{"nginx", "-g", "daemon off;"},
		ExposedPorts: map[string]struct{}{"80/tcp": {}},
	}
	hostnet := nginx
	hostnet.Cmd = []string{"nginx", "-listen", ":12003", "-g", "daemon off;"}
	hostnet.ExposedPorts = map[string]struct{}{"12003/tcp": {}}
	return []Image{
		{
			Refs: []string{e2e + "busybox:1.29-2"},
			Why: "the default container image: sh, echo, sleep, top, ls, id, touch, cat, grep, dd, mount, hostname, " +
				"ping, brctl, netstat, pidof, pgrep, ipcs; /bin/ls a hard link (MaskedPaths masks it); " +
				"user nobody in /etc/passwd (RunAsUserName)",
			Busybox: true, Index: true, Docker: true,
			Config: ocispec.ImageConfig{Cmd: []string{"sh"}},
		},
		{
			Refs: []string{e2e + "nginx:1.14-2"},
			Why: "the web server: GET / on port 80 answers 200 (Networking, Streaming port forward); " +
				"writes /var/run/nginx.pid, is found by pidof nginx (HostPID), has \"master process\" " +
				"in /proc/1/cmdline (ContainerPID)",
			Busybox: true, Index: true, Docker: true,
			Files:  []File{stubLink("usr/sbin/nginx"), {Path: "var/run", Dir: true}},
			Config: nginx,
		},
		{
			Refs:    []string{staging + "hostnet-nginx-" + runtime.GOARCH + ":latest"},
			Why:     "the web server on the host network: GET / on port 12003 answers 200 (Streaming port forward, host network)",
			Busybox: true, Docker: true,
			Files:  []File{stubLink("usr/sbin/nginx"), {Path: "var/run", Dir: true}},
			Config: hostnet,
		},
		{
			Refs:    []string{e2e + "httpd:2.4.39-4"},
			Why:     "the second web server of a pod: GET / on port 80 answers 200, the log has \"httpd\", echo works (Multiple Containers)",
			Busybox: true, Index: true, Docker: true,
			Files: []File{
				{Path: "usr/local/apache2", Dir: true}, {Path: "usr/local/apache2/bin", Dir: true},
				stubLink("usr/local/apache2/bin/httpd"),
			},
			Config: ocispec.ImageConfig{
				Env:          []string{"PATH=/usr/local/apache2/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
				Cmd:          []string{"httpd", "-DFOREGROUND"},
				ExposedPorts: map[string]struct{}{"80/tcp": {}},
			},
		},
		{
			Refs:    []string{e2e + "nonewprivs:1.3"},
			Why:     "its entrypoint, setuid root, prints \"Effective uid: N\": 0 unless no_new_privs (NoNewPrivs)",
			Busybox: true, Index: true, Docker: true,
			Files:  []File{{Path: "usr/local/bin/nnp", Stub: true, Mode: 0o4755}},
			Config: ocispec.ImageConfig{Entrypoint: []string{"/usr/local/bin/nnp"}},
		},
		pauseImage("3.9", "the same image from two registries: one image ID, two tags, both gone when one is removed "+
			"(Image Manager, Image Identifier Consistency)",
			"registry.k8s.io/pause:3.9", "k8s.gcr.io/pause:3.9"),
		pauseImage("3.10.2", "the sandbox image the harness configures: runs as the pod's first process", SandboxImage),
		userImage("test-image-user-uid", "1002"),
		userImage("test-image-user-username", "www-data"),
		userImage("test-image-user-uid-group", "1003:1004"),
		userImage("test-image-user-username-group", "www-data:1004"),
		{
			Refs: []string{staging + "test-image-predefined-group:latest"},
			Why: "USER 1000 (default-user), a member of group-defined-in-image (gid 50000) in /etc/group: " +
				"id -G is \"1000 1234 50000\" with SupplementalGroups [1234] (SupplementalGroupsPolicy); /etc/passwd for image volume subPath",
			Busybox: true, Index: true,
			Files: []File{
				{Path: "etc/passwd", Content: busyboxPasswd + "default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n"},
				{Path: "etc/group", Content: busyboxGroup + "default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n"},
				{Path: "home/default-user", Dir: true, UID: 1000},
			},
			Config: ocispec.ImageConfig{User: "1000", Cmd: []string{"sh"}},
		},
		testImage("test-image-latest", staging+"test-image-latest:latest"),
		testImage("test-image-digest", staging+"test-image-digest:latest"),
		testImage("test-image-1", staging+"test-image-1:latest"),
		testImage("test-image-2", staging+"test-image-2:latest"),
		testImage("test-image-3", staging+"test-image-3:latest"),
		testImage("test", staging+"test-image-tag:test"),
		testImage("all", staging+"test-image-tag:all"),
		testImage("same-image", staging+"test-image-tags:1", staging+"test-image-tags:2", staging+"test-image-tags:3"),
	}
}

// pauseImage is a pause image: the stub alone, as the user 65535 of the
// upstream pause images. version sets it apart from the other versions.
func pauseImage(version, why string, refs ...string) Image {
	return Image{
		Refs: refs, Why: why, Index: true, Docker: true,
		Files: []File{{Path: "pause", Stub: true}},
		Config: ocispec.ImageConfig{
			User:       "65535:65535",
			Entrypoint: []string{"/pause"},
			Labels:     map[string]string{ocispec.AnnotationVersion: version},
		},
	}
}

// The passwd and group of the busybox image.
const (
	busyboxPasswd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`
	busyboxGroup = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
`
)

// Hosts are the registry hosts of the catalogue's references, each once,
// in order of first use.
func Hosts() []string {
	var hosts []string
	seen := map[string]bool{}
	for _, img := range Catalogue() {
		for _, ref := range img.Refs {
			h, _, _ := splitRef(ref)
			if !seen[h] {
				seen[h] = true
				hosts = append(hosts, h)
			}
		}
	}
	return hosts
}

// splitRef splits "host/repo/path:tag" into host, repository and tag.
func splitRef(ref string) (host, repo, tag string) {
	for i := len(ref) - 1; i >= 0 && ref[i] != '/'; i-- {
		if ref[i] == ':' {
			ref, tag = ref[:i], ref[i+1:]
			break
		}
	}
	for i := range ref {
		if ref[i] == '/' {
			return ref[:i], ref[i+1:], tag
		}
	}
	return "", ref, tag
}
