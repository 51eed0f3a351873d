package spec

import (
	"bytes"
	"math"
	"strconv"
	"strings"
)

// MaxID is the largest UID or GID accepted: runc refuses IDs over
// 2^31-1, so an image or request asking for more is refused here first.
const MaxID = math.MaxInt32

// MaxUserFileSize bounds /etc/passwd and /etc/group: a larger file is
// refused rather than read into the daemon.
const MaxUserFileSize = 1 << 20

// PasswdEntry is one line of passwd(5). UID and GID keep the value as
// written (saturated at MaxUint64), so a lookup that lands on an
// out-of-range ID can name it; they are checked against MaxID when used.
type PasswdEntry struct {
	Name string
	UID  uint64
	GID  uint64
	Home string
}

// GroupEntry is one line of group(5).
type GroupEntry struct {
	Name    string
	GID     uint64
	Members []string
}

// UserDB is an image's user and group database. A nil *UserDB, or one
// whose Passwd or Group is nil, is an image without that file: numeric
// users still work, names do not resolve.
type UserDB struct {
	Passwd []PasswdEntry
	Group  []GroupEntry
}

// ParsePasswd parses passwd(5) content. Comments, blank lines and
// malformed lines (not seven fields, an empty name, an ID that is not a
// decimal number) are skipped, as the C library does.
func ParsePasswd(data []byte) []PasswdEntry {
	entries := []PasswdEntry{}
	for line := range lines(data) {
		f := strings.Split(line, ":")
		if len(f) != 7 || f[0] == "" {
			continue
		}
		uid, ok1 := parseID(f[2])
		gid, ok2 := parseID(f[3])
		if !ok1 || !ok2 {
			continue
		}
		entries = append(entries, PasswdEntry{Name: f[0], UID: uid, GID: gid, Home: f[5]})
	}
	return entries
}

// ParseGroup parses group(5) content, skipping what ParsePasswd skips
// (lines of other than four fields).
func ParseGroup(data []byte) []GroupEntry {
	entries := []GroupEntry{}
	for line := range lines(data) {
		f := strings.Split(line, ":")
		if len(f) != 4 || f[0] == "" {
			continue
		}
		gid, ok := parseID(f[2])
		if !ok {
			continue
		}
		var members []string
		for m := range strings.SplitSeq(f[3], ",") {
			if m = strings.TrimSpace(m); m != "" {
				members = append(members, m)
			}
		}
		entries = append(entries, GroupEntry{Name: f[0], GID: gid, Members: members})
	}
	return entries
}

// lines yields the lines of data that are neither blank nor comments,
// without their trailing "\r".
func lines(data []byte) func(func(string) bool) {
	return func(yield func(string) bool) {
		for raw := range bytes.SplitSeq(data, []byte("\n")) {
			line := strings.TrimSuffix(string(raw), "\r")
			if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			if !yield(line) {
				return
			}
		}
	}
}

// parseID parses a decimal ID. Digits only: no sign, no spaces. A number
// too large for uint64 saturates, to be refused by the range check.
func parseID(s string) (uint64, bool) {
	if s == "" || len(s) > 64 {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return math.MaxUint64, true
	}
	return v, true
}

// userByName returns the first passwd entry named name.
func (db *UserDB) userByName(name string) (PasswdEntry, bool) {
	if db == nil {
		return PasswdEntry{}, false
	}
	for _, e := range db.Passwd {
		if e.Name == name {
			return e, true
		}
	}
	return PasswdEntry{}, false
}

// userByID returns the first passwd entry with uid.
func (db *UserDB) userByID(uid uint32) (PasswdEntry, bool) {
	if db == nil {
		return PasswdEntry{}, false
	}
	for _, e := range db.Passwd {
		if e.UID == uint64(uid) {
			return e, true
		}
	}
	return PasswdEntry{}, false
}

// groupByName returns the first group entry named name.
func (db *UserDB) groupByName(name string) (GroupEntry, bool) {
	if db == nil {
		return GroupEntry{}, false
	}
	for _, e := range db.Group {
		if e.Name == name {
			return e, true
		}
	}
	return GroupEntry{}, false
}
