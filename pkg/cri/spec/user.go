package spec

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// identity is a resolved process user.
type identity struct {
	uid, gid uint32
	name     string // the passwd name, "" when the UID has no entry
	home     string // the passwd home, "" when unknown
}

// userString is the user a process runs as, in the image-spec form
// (user, uid, user:group, uid:gid, ...), from the CRI fields first and the
// image's USER last, as containerd does. "" means the image's default: 0.
func userString(field string, username string, uid, gid *runtime.Int64Value, imageUser string) (string, error) {
	var user, group string
	if uid != nil {
		v, err := checkRequestID(field+".run_as_user", uid.GetValue())
		if err != nil {
			return "", err
		}
		user = strconv.FormatUint(uint64(v), 10)
	}
	if username != "" {
		user = username
	}
	if gid != nil {
		v, err := checkRequestID(field+".run_as_group", gid.GetValue())
		if err != nil {
			return "", err
		}
		group = strconv.FormatUint(uint64(v), 10)
	}
	switch {
	case user == "" && group != "":
		return "", fmt.Errorf("%s.run_as_group %s: set without run_as_user or run_as_username: %w", field, group, errdefs.ErrInvalidArgument)
	case user == "":
		return imageUser, nil
	case group != "":
		return user + ":" + group, nil
	}
	return user, nil
}

// checkRequestID checks a UID or GID of the request.
func checkRequestID(field string, v int64) (uint32, error) {
	if v < 0 || v > MaxID {
		return 0, fmt.Errorf("%s %d: out of range [0, %d]: %w", field, v, MaxID, errdefs.ErrInvalidArgument)
	}
	return uint32(v), nil
}

// checkImageID checks a UID or GID found in the image's files.
func checkImageID(what string, v uint64) (uint32, error) {
	if v > MaxID {
		return 0, fmt.Errorf("%s %d: out of range [0, %d]: %w", what, v, MaxID, errdefs.ErrInvalidArgument)
	}
	return uint32(v), nil
}

// resolveUser resolves a user string against the image's user database.
// A numeric UID needs no passwd file (its GID is then 0, or the passwd
// entry's); a name that the image does not have is an error.
func resolveUser(userstr string, db *UserDB) (identity, error) {
	if userstr == "" {
		userstr = "0"
	}
	user, group, hasGroup := strings.Cut(userstr, ":")
	if user == "" || (hasGroup && (group == "" || strings.Contains(group, ":"))) {
		return identity{}, fmt.Errorf("user %q: not user, uid, user:group or uid:gid: %w", userstr, errdefs.ErrInvalidArgument)
	}
	var id identity
	if v, numeric := parseID(user); numeric {
		uid, err := checkImageID("user "+strconv.Quote(userstr)+": uid", v)
		if err != nil {
			return identity{}, err
		}
		id.uid = uid
		if e, ok := db.userByID(uid); ok {
			id.name, id.home = e.Name, e.Home
			if id.gid, err = checkImageID("user "+strconv.Quote(e.Name)+" in /etc/passwd: gid", e.GID); err != nil {
				return identity{}, err
			}
		}
	} else {
		e, ok := db.userByName(user)
		if !ok {
			return identity{}, fmt.Errorf("user %q: no such user in the image's /etc/passwd: %w", user, errdefs.ErrInvalidArgument)
		}
		var err error
		if id.uid, err = checkImageID("user "+strconv.Quote(user)+" in /etc/passwd: uid", e.UID); err != nil {
			return identity{}, err
		}
		if id.gid, err = checkImageID("user "+strconv.Quote(user)+" in /etc/passwd: gid", e.GID); err != nil {
			return identity{}, err
		}
		id.name, id.home = e.Name, e.Home
	}
	if !hasGroup {
		return id, nil
	}
	if v, numeric := parseID(group); numeric {
		gid, err := checkImageID("user "+strconv.Quote(userstr)+": gid", v)
		if err != nil {
			return identity{}, err
		}
		id.gid = gid
		return id, nil
	}
	g, ok := db.groupByName(group)
	if !ok {
		return identity{}, fmt.Errorf("group %q: no such group in the image's /etc/group: %w", group, errdefs.ErrInvalidArgument)
	}
	gid, err := checkImageID("group "+strconv.Quote(group)+" in /etc/group: gid", g.GID)
	if err != nil {
		return identity{}, err
	}
	id.gid = gid
	return id, nil
}

// imageGroups returns the GIDs of the groups of the image's /etc/group
// that list the user as a member, without the group named like the user
// (its primary group), as containerd does.
func imageGroups(id identity, db *UserDB) ([]uint32, error) {
	if id.name == "" || db == nil {
		return nil, nil
	}
	var gids []uint32
	for _, g := range db.Group {
		if g.Name == id.name || !slices.Contains(g.Members, id.name) {
			continue
		}
		gid, err := checkImageID("group "+strconv.Quote(g.Name)+" in /etc/group: gid", g.GID)
		if err != nil {
			return nil, err
		}
		gids = append(gids, gid)
	}
	return gids, nil
}

// requestGroups checks the supplemental groups of the request.
func requestGroups(field string, groups []int64) ([]uint32, error) {
	var gids []uint32
	for i, g := range groups {
		gid, err := checkRequestID(fmt.Sprintf("%s[%d]", field, i), g)
		if err != nil {
			return nil, err
		}
		gids = append(gids, gid)
	}
	return gids, nil
}

// mergeGIDs returns the sorted union of a and b, never nil.
func mergeGIDs(a, b []uint32) []uint32 {
	out := append(append([]uint32{}, a...), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// containerUser resolves the user of a workload container: the CRI's
// run_as_* fields, else the image's USER, else root; its supplemental groups
// by SupplementalGroupsPolicy (Merge: the image's groups of that user plus
// supplemental_groups; Strict: supplemental_groups only). It also returns
// the user's home from the image, "" when unknown.
func containerUser(image *ocispec.ImageConfig, cfg *runtime.ContainerConfig, db *UserDB) (specs.User, string, error) {
	const field = "linux.security_context"
	sc := cfg.GetLinux().GetSecurityContext()
	userstr, err := userString(field, sc.GetRunAsUsername(), sc.GetRunAsUser(), sc.GetRunAsGroup(), image.User)
	if err != nil {
		return specs.User{}, "", err
	}
	id, err := resolveUser(userstr, db)
	if err != nil {
		return specs.User{}, "", err
	}
	extra, err := requestGroups(field+".supplemental_groups", sc.GetSupplementalGroups())
	if err != nil {
		return specs.User{}, "", err
	}
	var fromImage []uint32
	switch p := sc.GetSupplementalGroupsPolicy(); p {
	case runtime.SupplementalGroupsPolicy_Merge:
		if fromImage, err = imageGroups(id, db); err != nil {
			return specs.User{}, "", err
		}
	case runtime.SupplementalGroupsPolicy_Strict:
	default:
		return specs.User{}, "", fmt.Errorf("%s.supplemental_groups_policy %d: unknown: %w", field, p, errdefs.ErrInvalidArgument)
	}
	return specs.User{UID: id.uid, GID: id.gid, AdditionalGids: mergeGIDs(fromImage, extra)}, id.home, nil
}

// sandboxUser resolves the user of the pause container: run_as_user and
// run_as_group of the pod, else the image's USER; supplemental_groups as
// given.
func sandboxUser(image *ocispec.ImageConfig, cfg *runtime.PodSandboxConfig, db *UserDB) (specs.User, error) {
	const field = "linux.security_context"
	sc := cfg.GetLinux().GetSecurityContext()
	userstr, err := userString(field, "", sc.GetRunAsUser(), sc.GetRunAsGroup(), image.User)
	if err != nil {
		return specs.User{}, err
	}
	id, err := resolveUser(userstr, db)
	if err != nil {
		return specs.User{}, err
	}
	extra, err := requestGroups(field+".supplemental_groups", sc.GetSupplementalGroups())
	if err != nil {
		return specs.User{}, err
	}
	return specs.User{UID: id.uid, GID: id.gid, AdditionalGids: mergeGIDs(nil, extra)}, nil
}

// checkHome refuses a home directory that a shell or a program reading
// HOME could misread: one with control characters, a newline included.
func checkHome(what, home string) error {
	if strings.IndexFunc(home, unicode.IsControl) >= 0 {
		return fmt.Errorf("%s %q: control characters in HOME: %w", what, home, errdefs.ErrInvalidArgument)
	}
	return nil
}
