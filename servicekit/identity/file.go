package identity

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
)

// fileFormat is the identities file.
type fileFormat struct {
	Identities []fileIdentity `json:"identities"`
}

type fileIdentity struct {
	Name             string      `json:"name"`
	Tokens           []string    `json:"tokens"`
	CertificateNames []string    `json:"certificate_names"`
	Scopes           []Scope     `json:"scopes"`
	Commit           []fileGrant `json:"commit"`
}

type fileGrant struct {
	Tables string `json:"tables"`
	AppIDs string `json:"app_ids"`
}

// maxFileBytes bounds the identities file.
const maxFileBytes = 4 << 20

// Parse reads an identities file's content. It refuses unknown fields,
// duplicate names, tokens and certificate names, unknown scopes, and
// identities that nothing proves.
func Parse(data []byte) (*Set, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f fileFormat
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("identities: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("identities: data after the JSON object")
	}
	s := &Set{byToken: map[[sha256.Size]byte]*Identity{}, byCert: map[string]*Identity{}}
	seen := map[string]bool{}
	var errs []error
	for i, fi := range f.Identities {
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("identities[%d] (%q): %s", i, fi.Name, fmt.Sprintf(format, args...)))
		}
		if fi.Name == "" {
			bad("no name")
		} else if seen[fi.Name] {
			bad("name used twice")
		}
		seen[fi.Name] = true
		if len(fi.Tokens) == 0 && len(fi.CertificateNames) == 0 {
			bad("neither tokens nor certificate_names: nothing proves this identity")
		}
		id := &Identity{Name: fi.Name, scopes: map[Scope]bool{}}
		for j, sc := range fi.Scopes {
			switch sc {
			case Read, Maintain, Operate, Admin:
				id.scopes[sc] = true
			case Commit:
				bad("scopes[%d]: commit rights are given by \"commit\": [{\"tables\": ..., \"app_ids\": ...}]", j)
			default:
				bad("scopes[%d]: unknown scope %q (read, maintain, operate, admin)", j, sc)
			}
		}
		for j, fg := range fi.Commit {
			var g grant
			var err error
			if g.tables, err = glob(fg.Tables); err != nil {
				bad("commit[%d].tables: %v", j, err)
			}
			if fg.AppIDs != "" {
				if g.appIDs, err = glob(fg.AppIDs); err != nil {
					bad("commit[%d].app_ids: %v", j, err)
				}
			}
			id.commits = append(id.commits, g)
		}
		for j, tok := range fi.Tokens {
			key, err := tokenKey(tok)
			if err != nil {
				bad("tokens[%d]: %v", j, err)
				continue
			}
			if other := s.byToken[key]; other != nil {
				bad("tokens[%d]: also a token of %q", j, other.Name)
				continue
			}
			s.byToken[key] = id
		}
		for j, name := range fi.CertificateNames {
			if name == "" {
				bad("certificate_names[%d]: empty", j)
				continue
			}
			if other := s.byCert[name]; other != nil {
				bad("certificate_names[%d]: %q also names %q", j, name, other.Name)
				continue
			}
			s.byCert[name] = id
		}
		s.names = append(s.names, fi.Name)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// Load reads and parses the identities file at path.
func Load(path string) (*Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("identities: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("identities: read %s: %w", path, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("identities: %s is larger than %d bytes", path, maxFileBytes)
	}
	s, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Store holds the current identities of a file; Reload replaces them
// atomically, so calls in flight keep the set they started with.
type Store struct {
	path string
	cur  atomic.Pointer[Set]
}

// Open loads the file at path into a new Store.
func Open(path string) (*Store, error) {
	s, err := Load(path)
	if err != nil {
		return nil, err
	}
	st := &Store{path: path}
	st.cur.Store(s)
	return st, nil
}

// Path returns the file the store reads.
func (st *Store) Path() string { return st.path }

// Current returns the identities in force.
func (st *Store) Current() *Set { return st.cur.Load() }

// Reload reads the file again. On error the identities in force stay.
func (st *Store) Reload() (*Set, error) {
	s, err := Load(st.path)
	if err != nil {
		return nil, err
	}
	st.cur.Store(s)
	return s, nil
}
