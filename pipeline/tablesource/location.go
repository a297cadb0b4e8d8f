package tablesource

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/plantlake/plantlake/delta/storage"
)

// ErrUnsupportedLocation is returned for a table location this build cannot
// read (only local folders and file:// URIs for now).
var ErrUnsupportedLocation = errors.New("tablesource: unsupported table location")

// OpenLocation returns a store rooted at a table location URI as the catalog
// gives it ("file:///data/warehouse/raw/t/" or a plain folder). This is the
// one place that turns a location into a store; object stores plug in here.
func OpenLocation(loc string) (storage.Store, error) {
	u, err := url.Parse(loc)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrUnsupportedLocation, loc, err)
	}
	path := loc
	switch {
	case u.Scheme == "file" && (u.Host == "" || u.Host == "localhost"):
		path = u.Path
	case u.Scheme == "":
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedLocation, loc)
	}
	store, err := storage.NewLocal(path)
	if err != nil {
		return nil, fmt.Errorf("open table folder %s: %w", path, err)
	}
	return store, nil
}
