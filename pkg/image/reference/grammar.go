package reference

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// checkDomain checks host[:port], where host is a DNS name or an IPv6
// address in brackets.
func checkDomain(d string) error {
	host, port := d, ""
	if strings.HasPrefix(d, "[") {
		end := strings.IndexByte(d, ']')
		if end < 0 {
			return errors.New("domain: unclosed '['")
		}
		if _, err := netip.ParseAddr(d[1:end]); err != nil {
			return errors.New("domain: bad IPv6 address")
		}
		host, port = "", d[end+1:]
		if port != "" && !strings.HasPrefix(port, ":") {
			return errors.New("domain: junk after IPv6 address")
		}
		port = strings.TrimPrefix(port, ":")
		if port == "" && strings.HasSuffix(d, ":") {
			return errors.New("domain: empty port")
		}
	} else if i := strings.LastIndexByte(d, ':'); i >= 0 {
		host, port = d[:i], d[i+1:]
		if port == "" {
			return errors.New("domain: empty port")
		}
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 || strings.TrimLeft(port, "0123456789") != "" {
			return errors.New("domain: bad port " + strconv.Quote(port))
		}
	}
	if host == "" {
		if strings.HasPrefix(d, "[") {
			return nil
		}
		return errors.New("domain: empty host")
	}
	for _, c := range strings.Split(host, ".") {
		if !validDomainComponent(c) {
			return errors.New("domain: bad component " + strconv.Quote(c))
		}
	}
	return nil
}

// validDomainComponent: [a-zA-Z0-9] or [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9].
func validDomainComponent(c string) bool {
	if c == "" || c[0] == '-' || c[len(c)-1] == '-' {
		return false
	}
	for i := 0; i < len(c); i++ {
		if !isAlnum(c[i]) && c[i] != '-' {
			return false
		}
	}
	return true
}

// checkPath checks the repository path: components [a-z0-9]+ joined by
// the separators ".", "_", "__" or runs of "-", components joined by "/".
func checkPath(p string) error {
	if p == "" {
		return errors.New("empty repository path")
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" {
			return errors.New("empty path component")
		}
		if strings.ToLower(c) != c {
			return errors.New("repository name must be lowercase")
		}
		if !validPathComponent(c) {
			return errors.New("bad path component " + strconv.Quote(c))
		}
	}
	return nil
}

func validPathComponent(c string) bool {
	i := 0
	for {
		// a run of [a-z0-9]+
		start := i
		for i < len(c) && isLowerAlnum(c[i]) {
			i++
		}
		if i == start {
			return false
		}
		if i == len(c) {
			return true
		}
		// a separator: "." | "_" | "__" | "-"+
		switch c[i] {
		case '.':
			i++
		case '_':
			i++
			if i < len(c) && c[i] == '_' {
				i++
			}
		case '-':
			for i < len(c) && c[i] == '-' {
				i++
			}
		default:
			return false
		}
	}
}

// validTag: [\w][\w.-]{0,127}.
func validTag(t string) bool {
	if t == "" || len(t) > maxTagLength || t[0] == '.' || t[0] == '-' {
		return false
	}
	for i := 0; i < len(t); i++ {
		if !isAlnum(t[i]) && t[i] != '_' && t[i] != '.' && t[i] != '-' {
			return false
		}
	}
	return true
}

// isIdentifier reports whether s is a 64-character lower-case hex string
// (an image ID), which is refused as a reference.
func isIdentifier(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}

func isLowerAlnum(b byte) bool { return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' }

func isAlnum(b byte) bool { return isLowerAlnum(b) || b >= 'A' && b <= 'Z' }
