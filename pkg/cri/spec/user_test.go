package spec

import (
	"slices"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

func TestParsePasswd(t *testing.T) {
	got := ParsePasswd([]byte(testPasswd))
	var names []string
	for _, e := range got {
		names = append(names, e.Name)
	}
	// "newline" is cut by its embedded newline into two malformed lines.
	want := []string{"root", "daemon", "alice", "bob", "nohome", "evil", "evilgid"}
	if !slices.Equal(names, want) {
		t.Fatalf("entries %q, want %q", names, want)
	}
	if e := got[2]; e.UID != 1000 || e.GID != 1000 || e.Home != "/home/alice" {
		t.Fatalf("alice = %+v", e)
	}
	for _, bad := range []string{
		"a:x:1:1::/", "a:x:-1:1::/:/bin/sh", "a:x:1:+1::/:/bin/sh", "a:x: 1:1::/:/bin/sh",
		":x:1:1::/:/bin/sh", "a:x::1::/:/bin/sh", "a:x:0x10:1::/:/bin/sh", "a:x:1:1::/:/bin/sh:extra",
	} {
		if e := ParsePasswd([]byte(bad)); len(e) != 0 {
			t.Errorf("%q parsed as %+v", bad, e)
		}
	}
	if e := ParsePasswd([]byte("a:x:99999999999999999999999:1::/:/bin/sh\r\n")); len(e) != 1 || e[0].UID <= MaxID {
		t.Errorf("huge uid = %+v, want one entry over MaxID", e)
	}
}

func TestParseGroup(t *testing.T) {
	got := ParseGroup([]byte(testGroup + "bad:x:1\n:x:1:\nspaced:x:7: a , b ,\n"))
	if len(got) != 8 {
		t.Fatalf("%d entries: %+v", len(got), got)
	}
	if g := got[1]; g.Name != "users" || g.GID != 100 || !slices.Equal(g.Members, []string{"alice", "bob"}) {
		t.Fatalf("users = %+v", g)
	}
	if g := got[7]; !slices.Equal(g.Members, []string{"a", "b"}) {
		t.Fatalf("spaced = %+v", g)
	}
}

// TestResolveUser follows containerd's WithUser: user, uid, user:group,
// uid:gid, uid:group, user:gid.
func TestResolveUser(t *testing.T) {
	db := testUsers()
	for _, tc := range []struct {
		user     string
		db       *UserDB
		uid, gid uint32
		home     string
		err      error
	}{
		{user: "", uid: 0, gid: 0, home: "/root"},
		{user: "0", uid: 0, gid: 0, home: "/root"},
		{user: "alice", uid: 1000, gid: 1000, home: "/home/alice"},
		{user: "1000", uid: 1000, gid: 1000, home: "/home/alice"},
		{user: "bob", uid: 1001, gid: 100, home: "/home/bob"},
		{user: "alice:users", uid: 1000, gid: 100, home: "/home/alice"},
		{user: "alice:29", uid: 1000, gid: 29, home: "/home/alice"},
		{user: "1000:wheel", uid: 1000, gid: 10, home: "/home/alice"},
		{user: "4242", uid: 4242, gid: 0},
		{user: "4242:4343", uid: 4242, gid: 4343},
		{user: "4242:4343", db: &UserDB{}, uid: 4242, gid: 4343},
		{user: "4242", db: nil, uid: 4242, gid: 0},
		{user: "2147483647:2147483647", uid: MaxID, gid: MaxID},
		{user: "2147483648", err: errdefs.ErrInvalidArgument},
		{user: "1:2147483648", err: errdefs.ErrInvalidArgument},
		{user: "99999999999999999999999", err: errdefs.ErrInvalidArgument},
		{user: "-1", err: errdefs.ErrInvalidArgument},
		{user: "nobody", err: errdefs.ErrInvalidArgument},
		{user: "alice:nogroup", err: errdefs.ErrInvalidArgument},
		{user: "alice", db: &UserDB{}, err: errdefs.ErrInvalidArgument},
		{user: "evil", err: errdefs.ErrInvalidArgument},
		{user: "evilgid", err: errdefs.ErrInvalidArgument},
		{user: "1:big", err: errdefs.ErrInvalidArgument},
		{user: "a:b:c", err: errdefs.ErrInvalidArgument},
		{user: ":1", err: errdefs.ErrInvalidArgument},
		{user: "1:", err: errdefs.ErrInvalidArgument},
	} {
		udb := db
		if tc.db != nil || tc.user == "4242" {
			udb = tc.db
		}
		id, err := resolveUser(tc.user, udb)
		if err != nil || tc.err != nil {
			if tc.err == nil || !errdefs.IsInvalidArgument(err) {
				t.Errorf("user %q: error %v, want %v", tc.user, err, tc.err)
			}
			continue
		}
		if id.uid != tc.uid || id.gid != tc.gid || id.home != tc.home {
			t.Errorf("user %q = %+v, want uid %d gid %d home %q", tc.user, id, tc.uid, tc.gid, tc.home)
		}
	}
}

func i64(v int64) *runtime.Int64Value { return &runtime.Int64Value{Value: v} }

func TestContainerUser(t *testing.T) {
	for _, tc := range []struct {
		name   string
		image  string
		sc     *runtime.LinuxContainerSecurityContext
		uid    uint32
		gid    uint32
		groups []uint32
		err    error
	}{
		{name: "root by default, root's groups", sc: nil, uid: 0, gid: 0, groups: []uint32{10}},
		{name: "image user by name", image: "alice", uid: 1000, gid: 1000, groups: []uint32{10, 100}},
		{name: "image user:group", image: "alice:audio", uid: 1000, gid: 29, groups: []uint32{10, 100}},
		{name: "run_as_user wins over image", image: "alice", sc: &runtime.LinuxContainerSecurityContext{RunAsUser: i64(1001)}, uid: 1001, gid: 100, groups: []uint32{29, 100}},
		{name: "run_as_username wins over run_as_user", sc: &runtime.LinuxContainerSecurityContext{RunAsUser: i64(1001), RunAsUsername: "alice"}, uid: 1000, gid: 1000, groups: []uint32{10, 100}},
		{name: "run_as_group", sc: &runtime.LinuxContainerSecurityContext{RunAsUser: i64(1000), RunAsGroup: i64(5)}, uid: 1000, gid: 5, groups: []uint32{10, 100}},
		// As containerd: every group listing the user but the one named
		// like it, its primary group (users, 100, for bob) included.
		{name: "merge with supplemental groups", image: "bob", sc: &runtime.LinuxContainerSecurityContext{SupplementalGroups: []int64{500, 29, 7}}, uid: 1001, gid: 100, groups: []uint32{7, 29, 100, 500}},
		{name: "strict drops the image's groups", image: "bob", sc: &runtime.LinuxContainerSecurityContext{SupplementalGroups: []int64{500}, SupplementalGroupsPolicy: runtime.SupplementalGroupsPolicy_Strict}, uid: 1001, gid: 100, groups: []uint32{500}},
		{name: "unknown uid has no groups", sc: &runtime.LinuxContainerSecurityContext{RunAsUser: i64(7777)}, uid: 7777, gid: 0, groups: []uint32{}},
		{name: "group over range in image", image: "mallory", err: errdefs.ErrInvalidArgument},
		{name: "run_as_group alone", sc: &runtime.LinuxContainerSecurityContext{RunAsGroup: i64(5)}, err: errdefs.ErrInvalidArgument},
		{name: "negative run_as_user", sc: &runtime.LinuxContainerSecurityContext{RunAsUser: i64(-1)}, err: errdefs.ErrInvalidArgument},
		{name: "run_as_user over range", sc: &runtime.LinuxContainerSecurityContext{RunAsUser: i64(1 << 31)}, err: errdefs.ErrInvalidArgument},
		{name: "negative supplemental group", sc: &runtime.LinuxContainerSecurityContext{SupplementalGroups: []int64{-5}}, err: errdefs.ErrInvalidArgument},
		{name: "unknown policy", sc: &runtime.LinuxContainerSecurityContext{SupplementalGroupsPolicy: 7}, err: errdefs.ErrInvalidArgument},
		{name: "unknown username", sc: &runtime.LinuxContainerSecurityContext{RunAsUsername: "nobody"}, err: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &runtime.ContainerConfig{Linux: &runtime.LinuxContainerConfig{SecurityContext: tc.sc}}
			db := testUsers()
			if tc.image == "mallory" {
				db.Passwd = append(db.Passwd, PasswdEntry{Name: "mallory", UID: 1005, GID: 1005, Home: "/"})
			}
			u, _, err := containerUser(&ocispec.ImageConfig{User: tc.image}, cfg, db)
			wantErr(t, err, tc.err)
			if tc.err != nil {
				return
			}
			if u.UID != tc.uid || u.GID != tc.gid || !slices.Equal(u.AdditionalGids, tc.groups) {
				t.Fatalf("user %+v, want uid %d gid %d groups %v", u, tc.uid, tc.gid, tc.groups)
			}
		})
	}
}
