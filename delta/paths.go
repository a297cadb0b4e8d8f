package delta

import (
	"net/url"
	"path"
	"sort"
	"strings"
)

// CanonicalPath returns the identity of a file named in the log by p, so
// that the same file spelled differently is one file: the path is URI
// decoded, a file: URI becomes an absolute path ("file:/p", "file:///p" and
// "/p" are the same), "." and ".." elements are resolved, and, when root
// (the table's absolute local directory, "" if unknown) is given, an absolute
// path inside the table becomes relative to it and a relative path that
// leaves the table becomes absolute.
//
// The result is a decoded relative slash path for files inside the table,
// an absolute path ("/...") for other local files, or "scheme://host/path"
// (path decoded) for files on other stores.
func CanonicalPath(p, root string) string {
	if plainRelative(p) {
		return p
	}
	return canonicalPath(p, root)
}

// canonicalPath is CanonicalPath without the shortcut for plain paths.
func canonicalPath(p, root string) string {
	if scheme, rest, ok := splitScheme(p); ok {
		if scheme == "file" {
			u, err := url.Parse(p)
			if err == nil && (u.Host == "" || u.Host == "localhost") && u.Opaque == "" {
				return canonicalAbs(u.Path, root)
			}
			dec := decode(strings.TrimPrefix(rest, "//"))
			return canonicalAbs("/"+strings.TrimLeft(dec, "/"), root)
		}
		u, err := url.Parse(p)
		if err != nil {
			return p
		}
		return u.Scheme + "://" + u.Host + path.Clean("/"+u.Path)
	}
	dec := decode(p)
	if strings.HasPrefix(dec, "/") {
		return canonicalAbs(dec, root)
	}
	rel := path.Clean(dec)
	if root != "" && (rel == ".." || strings.HasPrefix(rel, "../")) {
		return path.Clean(root + "/" + rel)
	}
	return rel
}

// plainRelative reports whether p is its own canonical form: a relative
// slash path with no escapes, no scheme, and no empty, "." or ".." element
// (what writers put in nearly every add action).
func plainRelative(p string) bool {
	if p == "" || p[0] == '/' || p[len(p)-1] == '/' {
		return false
	}
	segStart := 0
	for i := 0; i <= len(p); i++ {
		if i < len(p) {
			switch c := p[i]; c {
			case '%', ':', '\\':
				return false
			case '/':
			default:
				continue
			}
		}
		seg := p[segStart:i]
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		segStart = i + 1
	}
	return true
}

func canonicalAbs(p, root string) string {
	p = path.Clean("/" + p)
	if root != "" {
		r := path.Clean(root)
		if strings.HasPrefix(p, r+"/") {
			return p[len(r)+1:]
		}
	}
	return p
}

func decode(s string) string {
	if d, err := url.PathUnescape(s); err == nil {
		return d
	}
	return s
}

// splitScheme splits "scheme:rest" where scheme is a URI scheme of at least
// two letters (so a Windows drive letter is not a scheme).
func splitScheme(p string) (scheme, rest string, ok bool) {
	i := strings.IndexByte(p, ':')
	if i < 2 {
		return "", "", false
	}
	for j := 0; j < i; j++ {
		c := p[j]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case j > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return "", "", false
		}
	}
	return strings.ToLower(p[:i]), p[i+1:], true
}

// EncodePath URI-encodes a relative slash path for an add or remove action,
// escaping each segment (so "a b/c%d" becomes "a%20b/c%25d").
func EncodePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

func sortStrings(s []string) { sort.Strings(s) }
