// Package warehouse says where tables live inside a warehouse and keeps every
// path a client sends confined to its table: table names map to
// <warehouse>/<schema>/<table>/, and data-file paths are checked before the
// catalog touches the file system with them.
package warehouse

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/plantlake/plantlake/delta"
)

// ErrBadName is returned (wrapped) for a table name that is not `schema.table`
// with both parts valid identifiers.
var ErrBadName = errors.New("bad table name")

// ErrBadPath is returned (wrapped) for a data-file path that would leave its
// table, point into the table's log, or is not a plain relative path. It is
// delta.ErrBadDataPath: the delta library's check is the base of DataPath.
var ErrBadPath = delta.ErrBadDataPath

// maxIdentLen bounds each part of a table name; it keeps folder names sane.
const maxIdentLen = 128

// LogDir is the name of a Delta table's log folder.
const LogDir = delta.LogDir

// Name is a validated table name.
type Name struct {
	Schema string
	Table  string
}

// ParseName validates a `schema.table` name. Each part is a lower-case
// identifier: a letter or underscore, then letters, digits or underscores.
// This alone guarantees that a table's folder is a direct grandchild of the
// warehouse root.
func ParseName(s string) (Name, error) {
	schema, table, ok := strings.Cut(s, ".")
	if !ok {
		return Name{}, fmt.Errorf("%w: %q is not schema.table", ErrBadName, s)
	}
	for _, part := range []string{schema, table} {
		if err := checkIdent(part); err != nil {
			return Name{}, fmt.Errorf("%w: %q: %w", ErrBadName, s, err)
		}
	}
	return Name{Schema: schema, Table: table}, nil
}

// IsIdent reports whether s is a valid schema or table part.
func IsIdent(s string) bool { return checkIdent(s) == nil }

func checkIdent(s string) error {
	if s == "" {
		return errors.New("empty part")
	}
	if len(s) > maxIdentLen {
		return fmt.Errorf("part longer than %d characters", maxIdentLen)
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return fmt.Errorf("character %q at %d not allowed (use a-z, 0-9, _; not starting with a digit)", r, i)
		}
	}
	return nil
}

// String returns the `schema.table` form.
func (n Name) String() string { return n.Schema + "." + n.Table }

// Dir returns the table's folder relative to the warehouse root.
func (n Name) Dir() string { return n.Schema + "/" + n.Table }

// DataPath checks the path of a data file as it appears in an add or remove
// action (relative to the table, URI-encoded as Delta requires) and returns
// the decoded relative path to use with the table's store. On top of
// delta.DataPath (no schemes, absolute paths, `.`, `..` or empty segments,
// backslashes, NUL, or anything inside the table's log) it refuses ':', '?'
// and '#' anywhere, malformed escapes, and control characters.
func DataPath(p string) (string, error) {
	if i := strings.IndexAny(p, ":?#"); i >= 0 {
		// A colon before any slash is a scheme (file:, s3:, abfss:); Delta
		// writers never put ':' in a relative path unescaped either.
		return "", fmt.Errorf("%w: %q: %q not allowed (no schemes, queries or fragments)", ErrBadPath, p, p[i])
	}
	if _, err := url.PathUnescape(p); err != nil {
		return "", fmt.Errorf("%w: %q: %w", ErrBadPath, p, err)
	}
	dec, err := delta.DataPath(p)
	if err != nil {
		return "", err
	}
	for i, r := range dec {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("%w: %q: character %q at %d not allowed", ErrBadPath, p, r, i)
		}
	}
	return dec, nil
}

// ErrSymlink is returned (wrapped) for a data-file path that goes through a
// symbolic link inside the table: a link could point anywhere on the host.
var ErrSymlink = errors.New("symbolic link in data file path")

// CheckNoSymlinks checks that no element of rel (a path DataPath accepted)
// below the table folder tableDir is a symbolic link, and returns what
// lstat says of the last element: for a path without links, the file's
// own information, so that the caller need not stat it again. Missing
// elements are not an error here (the information is then nil); the
// caller's Stat reports them. An empty tableDir (a table on an object
// store, which has no links) passes with nil information.
func CheckNoSymlinks(tableDir, rel string) (fs.FileInfo, error) {
	if tableDir == "" {
		return nil, nil
	}
	p := tableDir
	var fi fs.FileInfo
	for _, seg := range strings.Split(rel, "/") {
		p = filepath.Join(p, seg)
		var err error
		if fi, err = os.Lstat(p); err != nil {
			return nil, nil
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%w: %q", ErrSymlink, rel)
		}
	}
	return fi, nil
}
