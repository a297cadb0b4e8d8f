package delta

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/plantlake/plantlake/delta/storage"
)

// ErrBadDataPath is wrapped by DataPath errors: a data-file path that is
// empty, has a scheme, is absolute, has ".", ".." or empty segments, a
// backslash or NUL, or points into the table's log.
var ErrBadDataPath = errors.New("delta: bad data file path")

// DataPath checks the path of a data file as an add or remove action names
// it (URI-encoded, relative to the table root) and returns the decoded
// relative slash path, which stays inside the table and out of its
// _delta_log. Commit applies it to every add and remove; services that
// accept paths from clients call it before touching the file system and may
// add stricter checks of their own.
func DataPath(p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("%w: empty", ErrBadDataPath)
	}
	if _, _, ok := splitScheme(p); ok {
		return "", fmt.Errorf("%w: %q has a scheme; paths must be relative to the table", ErrBadDataPath, p)
	}
	dec := decode(p)
	if _, err := storage.CleanPath(dec); err != nil {
		return "", fmt.Errorf("%w: %q is not a clean relative path inside the table", ErrBadDataPath, p)
	}
	if dec == LogDir || strings.HasPrefix(dec, LogDir+"/") {
		return "", fmt.Errorf("%w: %q is inside %s", ErrBadDataPath, p, LogDir)
	}
	return dec, nil
}

// CommitSummary is what a conflict check needs to know about one commit that
// won the race against a transaction: a version after the transaction's read
// version. SummarizeCommit builds it from the commit's actions; a writer that
// keeps recent commits in memory can keep their summaries instead.
type CommitSummary struct {
	// Version is the winning commit's version.
	Version int64
	// ProtocolChanged is true if the commit has a protocol action.
	ProtocolChanged bool
	// MetadataChanged is true if the commit has a metaData action.
	MetadataChanged bool
	// TxnAppIDs are the app ids of the commit's txn actions.
	TxnAppIDs []string
	// Removed are the canonical paths (CanonicalPath with the table root)
	// of the files the commit removed, in log order.
	Removed []string
	// AddedPartitions are the distinct partition values of the commit's adds
	// with dataChange=true (an empty map for an unpartitioned table); empty
	// if it added no data.
	AddedPartitions []map[string]string
}

// SummarizeCommit extracts the conflict-relevant facts of the commit at
// version with the given actions; root is the table's absolute local
// directory ("" if unknown), as for CanonicalPath.
func SummarizeCommit(version int64, actions []Action, root string) CommitSummary {
	s := CommitSummary{Version: version}
	var seen map[string]bool
	for _, a := range actions {
		switch {
		case a.Protocol != nil:
			s.ProtocolChanged = true
		case a.MetaData != nil:
			s.MetadataChanged = true
		case a.Txn != nil:
			s.TxnAppIDs = append(s.TxnAppIDs, a.Txn.AppID)
		case a.Remove != nil:
			s.Removed = append(s.Removed, CanonicalPath(a.Remove.Path, root))
		case a.Add != nil && a.Add.DataChange:
			k := partitionString(a.Add.PartitionValues)
			if seen == nil {
				seen = map[string]bool{}
			}
			if !seen[k] {
				seen[k] = true
				s.AddedPartitions = append(s.AddedPartitions, a.Add.PartitionValues)
			}
		}
	}
	return s
}

// partitionString renders partition values as "k1=v1/k2=v2" in key order.
func partitionString(values map[string]string) string {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(values[k])
	}
	return b.String()
}

// ConflictChecker decides whether commits that landed after a transaction's
// read version invalidate it. It is the one implementation of the conflict
// rules (see the package documentation, "Committing"): Commit uses it, and so
// does any writer that serializes commits itself. Build it with
// NewConflictChecker and call Check or CheckSummary once per winning commit,
// in version order; the first conflict is the answer.
type ConflictChecker struct {
	blindAppend    bool
	readsData      bool // a concurrent data add may change the outcome
	readWholeTable bool
	readPartitions []map[string]string
	readApps       map[string]bool
	readFiles      map[string]bool // canonical paths read or removed
	root           string
}

// NewConflictChecker captures what req read: its ReadAppIDs and the app ids
// of its txn actions, its ReadFiles and the files it removes, and
// ReadWholeTable / ReadPartitions; root is the table's absolute local
// directory ("" if unknown), as for CanonicalPath. Later changes to req do
// not affect the checker.
func NewConflictChecker(req *CommitRequest, root string) *ConflictChecker {
	c := &ConflictChecker{
		blindAppend:    req.BlindAppend,
		readsData:      req.readsSomething(),
		readWholeTable: req.ReadWholeTable,
		readPartitions: slices.Clone(req.ReadPartitions),
		readApps:       map[string]bool{},
		readFiles:      map[string]bool{},
		root:           root,
	}
	for _, id := range req.ReadAppIDs {
		c.readApps[id] = true
	}
	for _, p := range req.ReadFiles {
		c.readFiles[CanonicalPath(p, root)] = true
	}
	for _, a := range req.Actions {
		if a.Txn != nil {
			c.readApps[a.Txn.AppID] = true
		}
		if a.Remove != nil {
			c.readFiles[CanonicalPath(a.Remove.Path, root)] = true
		}
	}
	return c
}

// Check applies the rules to one winning commit given by its version and
// actions. It returns a *ConflictError (errors.Is(err, ErrConflict)) or nil.
func (c *ConflictChecker) Check(version int64, actions []Action) error {
	s := SummarizeCommit(version, actions, c.root)
	return c.CheckSummary(&s)
}

// CheckSummary applies the rules to one winning commit given by its summary
// (whose Removed paths must be canonical for the same root). It returns a
// *ConflictError (errors.Is(err, ErrConflict)) or nil.
func (c *ConflictChecker) CheckSummary(w *CommitSummary) error {
	switch {
	case w.ProtocolChanged:
		return &ConflictError{WinnerVersion: w.Version, Reason: "the protocol changed"}
	case w.MetadataChanged:
		return &ConflictError{WinnerVersion: w.Version, Reason: "the table metadata changed"}
	}
	for _, app := range w.TxnAppIDs {
		if c.readApps[app] {
			return &ConflictError{WinnerVersion: w.Version, Reason: fmt.Sprintf("it wrote a txn for app id %q", app)}
		}
	}
	if len(c.readFiles) > 0 {
		for _, p := range w.Removed {
			if c.readFiles[p] {
				return &ConflictError{WinnerVersion: w.Version, Reason: fmt.Sprintf("it removed file %q that this commit read or removes", p)}
			}
		}
	}
	if c.blindAppend || !c.readsData {
		return nil
	}
	for _, part := range w.AddedPartitions {
		if c.addMatters(part) {
			if len(part) == 0 {
				return &ConflictError{WinnerVersion: w.Version, Reason: "it added data to the table this commit read"}
			}
			return &ConflictError{WinnerVersion: w.Version, Reason: fmt.Sprintf("it added data into partition %q that this commit read", partitionString(part))}
		}
	}
	return nil
}

// addMatters reports whether data added concurrently with the given
// partition values falls into what the transaction read.
func (c *ConflictChecker) addMatters(values map[string]string) bool {
	if c.readWholeTable || len(c.readPartitions) == 0 {
		return true
	}
	for _, p := range c.readPartitions {
		match := true
		for k, v := range p {
			if values[k] != v {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}
