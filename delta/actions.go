package delta

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
)

// ErrInvalidLog is wrapped by errors about malformed log content: a line that
// is not JSON, an action whose required fields have the wrong type, a log
// without protocol or metadata, a gap between the commits replay needs.
var ErrInvalidLog = errors.New("delta: invalid log")

// Format is the encoding of a table's data files (metaData.format).
type Format struct {
	Provider string            `json:"provider"`
	Options  map[string]string `json:"options"`
}

// Protocol is the protocol action: the reader and writer versions and, for
// reader version 3 and writer version 7, the table features they need.
type Protocol struct {
	MinReaderVersion int      `json:"minReaderVersion"`
	MinWriterVersion int      `json:"minWriterVersion"`
	ReaderFeatures   []string `json:"readerFeatures,omitempty"`
	WriterFeatures   []string `json:"writerFeatures,omitempty"`
}

// MarshalJSON writes readerFeatures (writerFeatures) as a list, possibly
// empty, exactly when the reader (writer) version supports table features.
func (p Protocol) MarshalJSON() ([]byte, error) {
	type wire struct {
		MinReaderVersion int       `json:"minReaderVersion"`
		MinWriterVersion int       `json:"minWriterVersion"`
		ReaderFeatures   *[]string `json:"readerFeatures,omitempty"`
		WriterFeatures   *[]string `json:"writerFeatures,omitempty"`
	}
	w := wire{MinReaderVersion: p.MinReaderVersion, MinWriterVersion: p.MinWriterVersion}
	if p.MinReaderVersion >= 3 || len(p.ReaderFeatures) > 0 {
		rf := nonNil(p.ReaderFeatures)
		w.ReaderFeatures = &rf
	}
	if p.MinWriterVersion >= 7 || len(p.WriterFeatures) > 0 {
		wf := nonNil(p.WriterFeatures)
		w.WriterFeatures = &wf
	}
	return json.Marshal(w)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// HasReaderFeature reports whether name is among the reader features.
func (p *Protocol) HasReaderFeature(name string) bool { return contains(p.ReaderFeatures, name) }

// HasWriterFeature reports whether name is among the writer features.
func (p *Protocol) HasWriterFeature(name string) bool { return contains(p.WriterFeatures, name) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Metadata is the metaData action: the table's identity, schema, partition
// columns and configuration (table properties).
type Metadata struct {
	ID               string            `json:"id"`
	Name             string            `json:"name,omitempty"`
	Description      string            `json:"description,omitempty"`
	Format           Format            `json:"format"`
	SchemaString     string            `json:"schemaString"`
	PartitionColumns []string          `json:"partitionColumns"`
	Configuration    map[string]string `json:"configuration"`
	CreatedTime      *int64            `json:"createdTime,omitempty"`
}

// MarshalJSON writes the required collections as empty JSON values when nil.
func (m Metadata) MarshalJSON() ([]byte, error) {
	type plain Metadata
	c := plain(m)
	if c.Format.Provider == "" {
		c.Format.Provider = "parquet"
	}
	if c.Format.Options == nil {
		c.Format.Options = map[string]string{}
	}
	if c.PartitionColumns == nil {
		c.PartitionColumns = []string{}
	}
	if c.Configuration == nil {
		c.Configuration = map[string]string{}
	}
	return json.Marshal(c)
}

// Schema parses the schema string.
func (m *Metadata) Schema() (*StructType, error) { return ParseSchema(m.SchemaString) }

// Add is the add action: a data file that is part of the table.
type Add struct {
	// Path is a URI-encoded path relative to the table root, or an absolute
	// URI. In Snapshot.Files it is canonical instead (see Snapshot.Files).
	Path string `json:"path"`
	// PartitionValues maps partition column to its serialized value; "" or a
	// missing key is null.
	PartitionValues  map[string]string `json:"partitionValues"`
	Size             int64             `json:"size"`
	ModificationTime int64             `json:"modificationTime"`
	DataChange       bool              `json:"dataChange"`
	// Stats is the JSON-encoded per-file statistics, "" when absent.
	Stats string            `json:"stats,omitempty"`
	Tags  map[string]string `json:"tags,omitempty"`
	// DeletionVector is the deletion vector descriptor as JSON, nil when the
	// file has none. This library refuses tables whose files have one.
	DeletionVector          json.RawMessage `json:"deletionVector,omitempty"`
	BaseRowID               *int64          `json:"baseRowId,omitempty"`
	DefaultRowCommitVersion *int64          `json:"defaultRowCommitVersion,omitempty"`
	ClusteringProvider      string          `json:"clusteringProvider,omitempty"`
}

// MarshalJSON writes partitionValues as {} when nil, as the protocol requires it.
func (a Add) MarshalJSON() ([]byte, error) {
	type plain Add
	c := plain(a)
	if c.PartitionValues == nil {
		c.PartitionValues = map[string]string{}
	}
	if isJSONNull(c.DeletionVector) {
		c.DeletionVector = nil
	}
	return json.Marshal(c)
}

// UnmarshalJSON decodes an add; null partition values become "".
func (a *Add) UnmarshalJSON(data []byte) error {
	type plain Add
	var c plain
	if err := json.Unmarshal(data, &c); err != nil {
		return err
	}
	if isJSONNull(c.DeletionVector) {
		c.DeletionVector = nil
	}
	*a = Add(c)
	return nil
}

// Remove is the remove action: a file that left the table. It stays in
// snapshots as a tombstone until the deleted-file retention expires.
type Remove struct {
	Path                    string            `json:"path"`
	DeletionTimestamp       *int64            `json:"deletionTimestamp,omitempty"`
	DataChange              bool              `json:"dataChange"`
	ExtendedFileMetadata    *bool             `json:"extendedFileMetadata,omitempty"`
	PartitionValues         map[string]string `json:"partitionValues,omitempty"`
	Size                    *int64            `json:"size,omitempty"`
	Stats                   string            `json:"stats,omitempty"`
	Tags                    map[string]string `json:"tags,omitempty"`
	DeletionVector          json.RawMessage   `json:"deletionVector,omitempty"`
	BaseRowID               *int64            `json:"baseRowId,omitempty"`
	DefaultRowCommitVersion *int64            `json:"defaultRowCommitVersion,omitempty"`
}

// MarshalJSON writes partitionValues whenever it is non-nil, even empty.
func (r Remove) MarshalJSON() ([]byte, error) {
	type plain Remove
	type wire struct {
		plain
		PartitionValues *map[string]string `json:"partitionValues,omitempty"`
	}
	w := wire{plain: plain(r)}
	if isJSONNull(w.DeletionVector) {
		w.DeletionVector = nil
	}
	if r.PartitionValues != nil {
		w.PartitionValues = &r.PartitionValues
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes a remove, treating a null deletion vector as none.
func (r *Remove) UnmarshalJSON(data []byte) error {
	type plain Remove
	var c plain
	if err := json.Unmarshal(data, &c); err != nil {
		return err
	}
	if isJSONNull(c.DeletionVector) {
		c.DeletionVector = nil
	}
	*r = Remove(c)
	return nil
}

// Txn is the txn action (transaction identifier): the latest version an
// application committed, for idempotent writes.
type Txn struct {
	AppID       string `json:"appId"`
	Version     int64  `json:"version"`
	LastUpdated *int64 `json:"lastUpdated,omitempty"`
}

// CheckpointMetadata is the checkpointMetadata action of a V2 checkpoint.
type CheckpointMetadata struct {
	Version int64             `json:"version"`
	Tags    map[string]string `json:"tags,omitempty"`
}

// Sidecar is the sidecar action of a V2 checkpoint: a Parquet file in
// _delta_log/_sidecars holding some of the checkpoint's file actions.
type Sidecar struct {
	Path             string            `json:"path"`
	SizeInBytes      int64             `json:"sizeInBytes"`
	ModificationTime int64             `json:"modificationTime"`
	Tags             map[string]string `json:"tags,omitempty"`
}

// CommitInfo is the commitInfo action: provenance of a commit. Fields this
// library does not model are kept in Extra and written back unchanged.
type CommitInfo struct {
	// Timestamp is the commit time in milliseconds since the epoch.
	Timestamp int64
	// InCommitTimestamp is set on tables with in-commit timestamps.
	InCommitTimestamp *int64
	Operation         string
	// OperationParameters holds the operation's parameters; values that are
	// not JSON strings in the log are kept as their JSON text.
	OperationParameters map[string]string
	ReadVersion         *int64
	IsolationLevel      string
	IsBlindAppend       *bool
	EngineInfo          string
	// Extra holds every other field, verbatim.
	Extra map[string]json.RawMessage
}

var commitInfoKnown = []string{"timestamp", "inCommitTimestamp", "operation", "operationParameters",
	"readVersion", "isolationLevel", "isBlindAppend", "engineInfo"}

// MarshalJSON writes the known fields first, then Extra in key order.
func (c CommitInfo) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	first := true
	field := func(name string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("commitInfo.%s: %w", name, err)
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		kb, err := json.Marshal(name)
		if err != nil {
			return err
		}
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(b)
		return nil
	}
	var err error
	add := func(name string, v any) {
		if err == nil {
			err = field(name, v)
		}
	}
	add("timestamp", c.Timestamp)
	if c.InCommitTimestamp != nil {
		add("inCommitTimestamp", *c.InCommitTimestamp)
	}
	if c.Operation != "" {
		add("operation", c.Operation)
	}
	params := c.OperationParameters
	if params == nil {
		params = map[string]string{}
	}
	add("operationParameters", params)
	if c.ReadVersion != nil {
		add("readVersion", *c.ReadVersion)
	}
	if c.IsolationLevel != "" {
		add("isolationLevel", c.IsolationLevel)
	}
	if c.IsBlindAppend != nil {
		add("isBlindAppend", *c.IsBlindAppend)
	}
	if c.EngineInfo != "" {
		add("engineInfo", c.EngineInfo)
	}
	keys := make([]string, 0, len(c.Extra))
	for k := range c.Extra {
		if !contains(commitInfoKnown, k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		add(k, c.Extra[k])
	}
	if err != nil {
		return nil, err
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// UnmarshalJSON decodes the known fields leniently (a field of an
// unexpected type is kept in Extra instead) and keeps the others in Extra.
func (c *CommitInfo) UnmarshalJSON(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	*c = CommitInfo{}
	for k, v := range m {
		ok := true
		switch k {
		case "timestamp":
			ok = json.Unmarshal(v, &c.Timestamp) == nil
		case "inCommitTimestamp":
			ok = json.Unmarshal(v, &c.InCommitTimestamp) == nil
		case "operation":
			ok = json.Unmarshal(v, &c.Operation) == nil
		case "operationParameters":
			c.OperationParameters, ok = decodeStringMap(v)
		case "readVersion":
			ok = json.Unmarshal(v, &c.ReadVersion) == nil
		case "isolationLevel":
			ok = json.Unmarshal(v, &c.IsolationLevel) == nil
		case "isBlindAppend":
			ok = json.Unmarshal(v, &c.IsBlindAppend) == nil
		case "engineInfo":
			ok = json.Unmarshal(v, &c.EngineInfo) == nil
		default:
			ok = false
		}
		if !ok {
			if c.Extra == nil {
				c.Extra = map[string]json.RawMessage{}
			}
			c.Extra[k] = v
		}
	}
	return nil
}

// decodeStringMap decodes a JSON object whose values may be of any type; a
// non-string value is kept as its JSON text.
func decodeStringMap(v json.RawMessage) (map[string]string, bool) {
	if isJSONNull(v) {
		return nil, true
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(v, &raw); err != nil {
		return nil, false
	}
	out := make(map[string]string, len(raw))
	for k, rv := range raw {
		var s string
		if json.Unmarshal(rv, &s) == nil {
			out[k] = s
		} else {
			out[k] = string(rv)
		}
	}
	return out, true
}

// Action is one line of a Delta log file: exactly one of the fields is set.
// Actions this library does not model (cdc, domainMetadata, future ones) are
// kept verbatim in Other, so a rewrite of the log preserves them.
type Action struct {
	Add                *Add
	Remove             *Remove
	Txn                *Txn
	Protocol           *Protocol
	MetaData           *Metadata
	CommitInfo         *CommitInfo
	CheckpointMetadata *CheckpointMetadata
	Sidecar            *Sidecar
	// Other is the whole JSON line of an action of another kind.
	Other json.RawMessage
}

// Kind returns the action's JSON key ("add", "metaData", ...), or the key
// found in Other, or "" for an empty action.
func (a *Action) Kind() string {
	switch {
	case a.Add != nil:
		return "add"
	case a.Remove != nil:
		return "remove"
	case a.Txn != nil:
		return "txn"
	case a.Protocol != nil:
		return "protocol"
	case a.MetaData != nil:
		return "metaData"
	case a.CommitInfo != nil:
		return "commitInfo"
	case a.CheckpointMetadata != nil:
		return "checkpointMetadata"
	case a.Sidecar != nil:
		return "sidecar"
	case len(a.Other) > 0:
		var m map[string]json.RawMessage
		if json.Unmarshal(a.Other, &m) == nil {
			for k := range m {
				return k
			}
		}
	}
	return ""
}

// MarshalJSON writes the action as a single-key JSON object.
func (a Action) MarshalJSON() ([]byte, error) {
	var key string
	var v any
	switch {
	case a.Add != nil:
		key, v = "add", a.Add
	case a.Remove != nil:
		key, v = "remove", a.Remove
	case a.Txn != nil:
		key, v = "txn", a.Txn
	case a.Protocol != nil:
		key, v = "protocol", a.Protocol
	case a.MetaData != nil:
		key, v = "metaData", a.MetaData
	case a.CommitInfo != nil:
		// CommitInfo.MarshalJSON builds compact JSON from json.Marshal
		// pieces; calling it directly skips json.Marshal's re-compaction
		// (this runs on every commit).
		b, err := a.CommitInfo.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("delta: marshal commitInfo action: %w", err)
		}
		return wrapAction("commitInfo", b), nil
	case a.CheckpointMetadata != nil:
		key, v = "checkpointMetadata", a.CheckpointMetadata
	case a.Sidecar != nil:
		key, v = "sidecar", a.Sidecar
	case len(a.Other) > 0:
		// Kept verbatim from a log file, which may have been pretty-printed:
		// json.Marshal validates and compacts it so it stays one line of
		// newline-delimited JSON.
		b, err := json.Marshal(a.Other)
		if err != nil {
			return nil, fmt.Errorf("delta: marshal unknown action: %w", err)
		}
		return b, nil
	default:
		return nil, errors.New("delta: marshal empty action")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("delta: marshal %s action: %w", key, err)
	}
	return wrapAction(key, b), nil
}

// wrapAction returns {"key":b}.
func wrapAction(key string, b []byte) []byte {
	out := make([]byte, 0, len(b)+len(key)+5)
	out = append(out, '{', '"')
	out = append(out, key...)
	out = append(out, '"', ':')
	out = append(out, b...)
	out = append(out, '}')
	return out
}

// UnmarshalJSON decodes one action. An object whose only non-null key is not
// a known action is kept in Other.
func (a *Action) UnmarshalJSON(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%w: action is not a JSON object: %v", ErrInvalidLog, err)
	}
	if m == nil {
		return fmt.Errorf("%w: action is null", ErrInvalidLog)
	}
	*a = Action{}
	var kinds []string
	for k, v := range m {
		if !isJSONNull(v) {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) != 1 {
		if len(kinds) == 0 {
			return fmt.Errorf("%w: action object has no action", ErrInvalidLog)
		}
		sort.Strings(kinds)
		return fmt.Errorf("%w: action object has %d actions %v", ErrInvalidLog, len(kinds), kinds)
	}
	k := kinds[0]
	v := m[k]
	var err error
	switch k {
	case "add":
		a.Add = new(Add)
		err = json.Unmarshal(v, a.Add)
	case "remove":
		a.Remove = new(Remove)
		err = json.Unmarshal(v, a.Remove)
	case "txn":
		a.Txn = new(Txn)
		err = json.Unmarshal(v, a.Txn)
	case "protocol":
		a.Protocol = new(Protocol)
		err = json.Unmarshal(v, a.Protocol)
	case "metaData":
		a.MetaData = new(Metadata)
		err = json.Unmarshal(v, a.MetaData)
	case "commitInfo":
		a.CommitInfo = new(CommitInfo)
		err = json.Unmarshal(v, a.CommitInfo)
	case "checkpointMetadata":
		a.CheckpointMetadata = new(CheckpointMetadata)
		err = json.Unmarshal(v, a.CheckpointMetadata)
	case "sidecar":
		a.Sidecar = new(Sidecar)
		err = json.Unmarshal(v, a.Sidecar)
	default:
		a.Other = append(json.RawMessage(nil), bytes.TrimSpace(data)...)
	}
	if err != nil {
		*a = Action{}
		return fmt.Errorf("%w: %s action: %v", ErrInvalidLog, k, err)
	}
	return nil
}

func isJSONNull(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) == 0 || string(b) == "null"
}

// ParseActions decodes newline-delimited JSON actions, as in a commit file or
// a JSON checkpoint. Blank lines are skipped.
func ParseActions(data []byte) ([]Action, error) {
	var out []Action
	line := 0
	for len(data) > 0 {
		line++
		i := bytes.IndexByte(data, '\n')
		var l []byte
		if i < 0 {
			l, data = data, nil
		} else {
			l, data = data[:i], data[i+1:]
		}
		l = bytes.TrimSpace(l)
		if len(l) == 0 {
			continue
		}
		var a Action
		if err := json.Unmarshal(l, &a); err != nil {
			if !errors.Is(err, ErrInvalidLog) {
				err = fmt.Errorf("%w: %v", ErrInvalidLog, err)
			}
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// MarshalActions encodes actions as newline-delimited JSON, one per line,
// each line ending in "\n".
func MarshalActions(actions []Action) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(512 * len(actions))
	for i := range actions {
		// Action.MarshalJSON returns compact JSON; calling it directly skips
		// json.Marshal's second pass over the bytes.
		b, err := actions[i].MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("action %d: %w", i, err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes(), nil
}
