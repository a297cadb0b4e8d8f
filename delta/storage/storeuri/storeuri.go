// Package storeuri opens a storage.Store from a URI, dispatching on its
// scheme, so that every program that takes a warehouse or table location
// accepts the same forms:
//
//	/var/lib/plantlake/warehouse     a local folder (relative paths too)
//	file:///var/lib/plantlake/warehouse
//	s3://bucket/prefix[?region=R&endpoint=URL&path_style=true]
//	abfss://container@account.dfs.core.windows.net/prefix
//	az://container/prefix            (account from AZURE_STORAGE_ACCOUNT_NAME)
//
// See packages s3store and azstore for the settings each cloud store takes
// from the environment.
package storeuri

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/delta/storage/azstore"
	"github.com/plantlake/plantlake/delta/storage/s3store"
)

// Open opens the store at uri. A local folder is created if missing; cloud
// stores are not contacted until first used.
func Open(ctx context.Context, uri string) (storage.Store, error) {
	scheme, err := Scheme(uri)
	if err != nil {
		return nil, err
	}
	switch scheme {
	case "file":
		dir, err := LocalDir(uri)
		if err != nil {
			return nil, err
		}
		return storage.NewLocal(dir)
	case "s3", "s3a":
		return s3store.Open(ctx, uri)
	case "abfss", "abfs", "az", "azure":
		return azstore.Open(uri)
	}
	return nil, fmt.Errorf("storeuri: %q: unsupported scheme %q (want a folder, file://, s3://, abfss:// or az://)", uri, scheme)
}

// Scheme returns the URI's scheme, "file" for a plain path.
func Scheme(uri string) (string, error) {
	if uri == "" {
		return "", fmt.Errorf("storeuri: empty location")
	}
	if !strings.Contains(uri, "://") {
		return "file", nil
	}
	u, err := url.Parse(uri)
	if err != nil {
		return "", fmt.Errorf("storeuri: parse %q: %w", uri, err)
	}
	return strings.ToLower(u.Scheme), nil
}

// IsLocal reports whether uri names a local folder (a path or file://).
func IsLocal(uri string) bool {
	s, err := Scheme(uri)
	return err == nil && s == "file"
}

// LocalDir returns the absolute folder of a plain path or file:// URI.
func LocalDir(uri string) (string, error) {
	p := uri
	if strings.Contains(uri, "://") {
		u, err := url.Parse(uri)
		if err != nil {
			return "", fmt.Errorf("storeuri: parse %q: %w", uri, err)
		}
		if u.Scheme != "file" || (u.Host != "" && u.Host != "localhost") {
			return "", fmt.Errorf("storeuri: %q is not a local folder", uri)
		}
		p = u.Path
	}
	dir, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("storeuri: %q: %w", uri, err)
	}
	return dir, nil
}

// Join returns the URI of rel (a slash path) inside the location uri, with
// any query of uri dropped: a table's location inside a warehouse. A local
// location becomes a file:// URI.
func Join(uri, rel string) (string, error) {
	if IsLocal(uri) {
		dir, err := LocalDir(uri)
		if err != nil {
			return "", err
		}
		u := url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(dir, filepath.FromSlash(rel)))}
		return u.String(), nil
	}
	u, err := url.Parse(uri)
	if err != nil {
		return "", fmt.Errorf("storeuri: parse %q: %w", uri, err)
	}
	u.RawQuery = ""
	u.Path = "/" + storage.Join(u.Path, rel)
	u.RawPath = ""
	return u.String(), nil
}
