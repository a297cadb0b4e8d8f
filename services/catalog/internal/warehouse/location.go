package warehouse

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"

	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/delta/storage/storeuri"
)

// Location is an opened warehouse: where it is and the store that reads
// and writes it. A warehouse is a local folder or an object-store URI
// (s3://, abfss://, az://; see package storeuri).
type Location struct {
	// URI is the warehouse as configured, a folder made absolute.
	URI string
	// Dir is the absolute local folder, "" on an object store.
	Dir string
	// Store is the warehouse's store; tables are Sub stores of it.
	Store storage.Store
}

// Open opens the warehouse at uri, creating a local folder if missing.
// Object stores are not contacted until first used.
func Open(ctx context.Context, uri string) (*Location, error) {
	if _, err := Check(uri); err != nil {
		return nil, err
	}
	st, err := storeuri.Open(ctx, uri)
	if err != nil {
		return nil, fmt.Errorf("open warehouse: %w", err)
	}
	loc := &Location{URI: uri, Store: st}
	if storeuri.IsLocal(uri) {
		if loc.Dir, err = storeuri.LocalDir(uri); err != nil {
			return nil, err
		}
		loc.URI = loc.Dir
	}
	return loc, nil
}

// Check validates a warehouse location without opening it and returns its
// scheme ("file" for a folder).
func Check(uri string) (string, error) {
	scheme, err := storeuri.Scheme(uri)
	if err != nil {
		return "", fmt.Errorf("warehouse %q: %w", uri, err)
	}
	switch scheme {
	case "file":
		_, err = storeuri.LocalDir(uri)
	case "s3", "s3a", "abfss", "abfs", "az", "azure":
		_, err = url.Parse(uri)
	default:
		err = fmt.Errorf("scheme %q not supported (want a folder, file://, s3://, abfss:// or az://)", scheme)
	}
	if err != nil {
		return "", fmt.Errorf("warehouse %q: %w", uri, err)
	}
	return scheme, nil
}

// TableDir returns the local folder of table n, "" on an object store.
func (l *Location) TableDir(n Name) string {
	if l.Dir == "" {
		return ""
	}
	return filepath.Join(l.Dir, n.Schema, n.Table)
}

// TableURI returns the URI of table n's folder with a trailing slash:
// file:///… for a local warehouse, else the object-store URI (without the
// warehouse URI's query settings), as engines such as delta-rs and Spark
// address the table.
func (l *Location) TableURI(n Name) string {
	u, err := storeuri.Join(l.URI, n.Dir())
	if err != nil {
		// The URI was checked by Open.
		return l.URI + "/" + n.Dir() + "/"
	}
	return u + "/"
}
