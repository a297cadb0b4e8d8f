package delta

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Head is the latest version of a table as its writer knows it: what the
// next commit builds on. Table.Commit keeps one; a writer that serializes
// commits itself (the catalog) keeps its own and advances it with Next.
type Head struct {
	// Version is the latest version (-1 before version 0).
	Version int64
	// Protocol and Metadata are those in force at Version.
	Protocol Protocol
	Metadata Metadata
	// InCommitTimestamp is Version's in-commit timestamp in milliseconds,
	// nil if it has none.
	InCommitTimestamp *int64
}

// Next returns the head after version v, whose actions are acts.
func (h Head) Next(v int64, acts []Action) Head {
	n := Head{Version: v, Protocol: h.Protocol, Metadata: h.Metadata}
	for _, a := range acts {
		switch {
		case a.Protocol != nil:
			n.Protocol = *a.Protocol
		case a.MetaData != nil:
			n.Metadata = *a.MetaData
		case a.CommitInfo != nil && a.CommitInfo.InCommitTimestamp != nil:
			ict := *a.CommitInfo.InCommitTimestamp
			n.InCommitTimestamp = &ict
		}
	}
	return n
}

// Head returns the snapshot as a commit's base.
func (s *Snapshot) Head() Head {
	h := Head{Version: s.version, Protocol: s.protocol, Metadata: s.metadata}
	if ictEnabled(&s.metadata) && s.version >= ictEnablementVersion(&s.metadata) && !s.timestamp.IsZero() {
		ict := s.timestamp.UnixMilli()
		h.InCommitTimestamp = &ict
	}
	return h
}

// CommitError is a commit request that is wrong in itself, naming the
// action and field; errors.Is(err, ErrInvalidCommit) is true.
type CommitError struct {
	// Action is the index of the offending action in CommitRequest.Actions,
	// -1 when the request as a whole is wrong.
	Action int
	// Field is the field in the log's spelling: within the action
	// (`add.partitionValues["day"]`, `metaData.configuration["delta.appendOnly"]`)
	// or of the request ("readVersion") when Action is -1.
	Field string
	// Reason says what is wrong.
	Reason string
}

// Error names the action, the field and the reason.
func (e *CommitError) Error() string {
	if e.Action < 0 {
		return fmt.Sprintf("%v: %s: %s", ErrInvalidCommit, e.Field, e.Reason)
	}
	return fmt.Sprintf("%v: actions[%d].%s: %s", ErrInvalidCommit, e.Action, e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidCommit) true.
func (e *CommitError) Is(target error) bool { return target == ErrInvalidCommit }

func badAction(i int, field, format string, args ...any) error {
	return &CommitError{Action: i, Field: field, Reason: fmt.Sprintf(format, args...)}
}

// PreparedCommit is a commit request checked against the head it was
// prepared on: the one preparation every writer of a table goes through
// (Table.Commit and the catalog). PrepareCommit validates; ConflictChecker
// checks the commits that landed after the read version; EncodeVersion
// writes commitInfo, with the in-commit timestamp, in front of the actions.
// A PreparedCommit stays valid while no winner conflicts with it: a
// protocol or metadata change after its head always does.
type PreparedCommit struct {
	req  CommitRequest
	body []Action // in log order
}

// PrepareCommit checks req against head, the table's latest version
// (req.ReadVersion <= head.Version):
//
//   - the table's protocol (and a new one in the request) is one this
//     library may write, and a new protocol with the metadata one it reads;
//   - actions: no commitInfo or checkpoint-only actions, at most one
//     metaData and one protocol; data paths pass DataPath, none added or
//     removed twice, sizes not negative, no deletion vectors;
//   - a new metaData: a valid schema with valid column names
//     (CheckColumnNames), partition columns in the schema that may partition
//     (CheckPartitionColumnName, CanPartitionBy), valid properties
//     (CheckConfiguration), and in-commit timestamps only with the
//     inCommitTimestamp writer feature;
//   - adds: partition values only for partition columns, each parsing as its
//     column's type (ParsePartitionValue; "" or absent is null, and Actions
//     writes "" for an absent one);
//   - delta.appendOnly: no remove with dataChange=true;
//   - row rules (CHECK constraints, column invariants; see rowrules.go):
//     no add with dataChange=true to a table with one, and no new one;
//   - blind appends only add and write txns.
//
// Errors wrap ErrInvalidCommit (a *CommitError naming the action and field),
// ErrUnsupportedProtocol or ErrUnsupportedFeature.
func PrepareCommit(req CommitRequest, head Head) (*PreparedCommit, error) {
	if req.ReadVersion < 0 {
		return nil, &CommitError{Action: -1, Field: "readVersion", Reason: fmt.Sprintf("%d: use Create for a new table", req.ReadVersion)}
	}
	if req.ReadVersion > head.Version {
		return nil, &CommitError{Action: -1, Field: "readVersion", Reason: fmt.Sprintf("%d is after the latest version %d", req.ReadVersion, head.Version)}
	}
	if req.Operation == "" {
		return nil, &CommitError{Action: -1, Field: "operation", Reason: "empty"}
	}
	if err := checkWritable(&head.Protocol); err != nil {
		return nil, err
	}
	if err := validate(&req, &head); err != nil {
		return nil, err
	}
	body := orderActions(req.Actions)
	fillNullPartitions(body, head.Metadata.PartitionColumns, req.Actions)
	return &PreparedCommit{req: req, body: body}, nil
}

// fillNullPartitions gives every add that leaves a partition column out a
// copy with "" (null) for it, so the log names every partition column as
// PROTOCOL.md's readers expect. A metaData action in acts sets the columns.
func fillNullPartitions(body []Action, cols []string, acts []Action) {
	for _, a := range acts {
		if a.MetaData != nil {
			cols = a.MetaData.PartitionColumns
		}
	}
	for i, a := range body {
		if a.Add == nil {
			continue
		}
		var filled map[string]string
		for _, c := range cols {
			if _, ok := a.Add.PartitionValues[c]; ok {
				continue
			}
			if filled == nil {
				filled = make(map[string]string, len(cols))
				for k, v := range a.Add.PartitionValues {
					filled[k] = v
				}
			}
			filled[c] = ""
		}
		if filled != nil {
			add := *a.Add
			add.PartitionValues = filled
			body[i] = Action{Add: &add}
		}
	}
}

// Request returns the request as prepared. Do not modify it.
func (p *PreparedCommit) Request() *CommitRequest { return &p.req }

// Actions returns the request's actions in the order a commit writes them:
// protocol, metaData, txn, remove, add, others.
func (p *PreparedCommit) Actions() []Action { return p.body }

// ConflictChecker returns the checker of the commits after the read
// version. readPartitions and readWholeTable add to what the request says
// it read (a writer that learns the partitions of the files read from its
// own state passes them here); root is as for NewConflictChecker.
func (p *PreparedCommit) ConflictChecker(root string, readPartitions []map[string]string, readWholeTable bool) *ConflictChecker {
	req := p.req
	req.ReadPartitions = append(slices.Clone(req.ReadPartitions), readPartitions...)
	req.ReadWholeTable = req.ReadWholeTable || readWholeTable
	return NewConflictChecker(&req, root)
}

// CommitInfo returns the commitInfo of this commit alone: operation and
// parameters, read version, isolation level, blind append, engine info
// ("plantlake-delta" if the request names none) and a new txnId.
// EncodeVersion sets its timestamps.
func (p *PreparedCommit) CommitInfo() CommitInfo {
	blind := p.req.BlindAppend
	rv := p.req.ReadVersion
	ci := CommitInfo{
		Operation:           p.req.Operation,
		OperationParameters: p.req.OperationParameters,
		ReadVersion:         &rv,
		IsolationLevel:      "Serializable",
		IsBlindAppend:       &blind,
		EngineInfo:          p.req.EngineInfo,
		Extra:               map[string]json.RawMessage{"txnId": json.RawMessage(`"` + uuid.NewString() + `"`)},
	}
	if ci.EngineInfo == "" {
		ci.EngineInfo = "plantlake-delta"
	}
	return ci
}

// EncodedVersion is a version ready to be written as _delta_log/<v>.json.
type EncodedVersion struct {
	// Data is the commit file's content.
	Data []byte
	// Actions are its actions, commitInfo first.
	Actions []Action
	// Time is the commit time: the in-commit timestamp when the table has
	// them, else commitInfo.timestamp.
	Time time.Time
}

// EncodeVersion serializes version head.Version+1: ci followed by body (in
// the order given). It sets ci.Timestamp to now and, when the metadata in
// force after the version enables in-commit timestamps, ci.InCommitTimestamp
// to now or, if that is not after head's, head's plus one millisecond, so
// in-commit timestamps increase. A version that turns them on for an
// existing table also records delta.inCommitTimestampEnablementVersion and
// ...Timestamp in its metaData, as PROTOCOL.md asks.
func EncodeVersion(head Head, ci CommitInfo, body []Action, now time.Time) (EncodedVersion, error) {
	version := head.Version + 1
	ms := now.UnixMilli()
	ci.Timestamp = ms
	ci.InCommitTimestamp = nil
	meta := &head.Metadata
	metaAt := -1
	for i := range body {
		if body[i].MetaData != nil {
			meta, metaAt = body[i].MetaData, i
		}
	}
	out := make([]Action, 0, len(body)+1)
	out = append(out, Action{CommitInfo: &ci})
	out = append(out, body...)
	commitTime := ms
	if ictEnabled(meta) {
		ict := ms
		if head.InCommitTimestamp != nil && *head.InCommitTimestamp >= ict {
			ict = *head.InCommitTimestamp + 1
		}
		ci.InCommitTimestamp = &ict
		commitTime = ict
		if version > 0 && !ictEnabled(&head.Metadata) && metaAt >= 0 {
			m := *meta
			m.Configuration = make(map[string]string, len(meta.Configuration)+2)
			for k, v := range meta.Configuration {
				m.Configuration[k] = v
			}
			m.Configuration[PropICTEnablementVersion] = strconv.FormatInt(version, 10)
			m.Configuration[PropICTEnablementTimeStmp] = strconv.FormatInt(ict, 10)
			out[metaAt+1] = Action{MetaData: &m}
		}
	}
	data, err := MarshalActions(out)
	if err != nil {
		return EncodedVersion{}, fmt.Errorf("delta: encode version %d: %w", version, err)
	}
	return EncodedVersion{Data: data, Actions: out, Time: millisTime(commitTime)}, nil
}

// validate checks the request against head's protocol and metadata.
func validate(req *CommitRequest, head *Head) error {
	meta := &head.Metadata
	proto := &head.Protocol
	nMeta, nProto := 0, 0
	metaAt := -1
	for i, a := range req.Actions {
		switch {
		case a.MetaData != nil:
			meta, metaAt = a.MetaData, i
			nMeta++
		case a.Protocol != nil:
			proto = a.Protocol
			nProto++
		case a.CommitInfo != nil:
			return badAction(i, "commitInfo", "commitInfo is written by the commit")
		case a.Sidecar != nil || a.CheckpointMetadata != nil:
			return badAction(i, a.Kind(), "a checkpoint-only action")
		}
	}
	if nMeta > 1 || nProto > 1 {
		return &CommitError{Action: -1, Field: "actions", Reason: "at most one metaData and one protocol action"}
	}
	if nProto == 1 {
		if err := checkWritable(proto); err != nil {
			return err
		}
	}
	schema, err := parseSchemaCached(meta.SchemaString)
	if err != nil {
		if metaAt < 0 {
			return fmt.Errorf("delta: table schema: %w", err)
		}
		return badAction(metaAt, "metaData.schemaString", "%v", err)
	}
	if nMeta == 1 || nProto == 1 {
		if err := checkReadable(proto, meta); err != nil {
			return err
		}
	}
	rules := rowRules(meta.Configuration, schema)
	if nMeta == 1 && len(rules) > 0 {
		var before []rowRule
		if old, err := parseSchemaCached(head.Metadata.SchemaString); err == nil {
			before = rowRules(head.Metadata.Configuration, old)
		}
		if r, ok := newRowRule(before, rules); ok {
			return rowRuleError(r, "a new rule needs the rows already in the table checked")
		}
	}
	if nMeta == 1 {
		if err := checkNewMetadata(meta, proto, schema); err != nil {
			if ce, ok := err.(*CommitError); ok {
				ce.Action = metaAt
			}
			return err
		}
	}
	partTypes := make(map[string]DataType, len(meta.PartitionColumns))
	for _, c := range meta.PartitionColumns {
		if f := schema.Field(c); f != nil {
			partTypes[c] = f.Type
		}
	}
	seenAdd, seenRemove, seenTxn := map[string]bool{}, map[string]bool{}, map[string]bool{}
	appendOnly := strings.EqualFold(meta.Configuration[PropAppendOnly], "true")
	for i, a := range req.Actions {
		switch {
		case a.Add != nil:
			if _, err := DataPath(a.Add.Path); err != nil {
				return badAction(i, "add.path", "%v", err)
			}
			if err := checkPartitionValues(partTypes, a.Add.PartitionValues); err != nil {
				err.Action = i
				return err
			}
			if a.Add.Size < 0 {
				return badAction(i, "add.size", "negative")
			}
			if len(a.Add.DeletionVector) > 0 {
				return badAction(i, "add.deletionVector", "deletion vectors are not supported")
			}
			if a.Add.DataChange && len(rules) > 0 {
				return rowRuleError(rules[0], "new data needs its rows checked (only rewrites, dataChange=false, may commit)")
			}
			k := CanonicalPath(a.Add.Path, "")
			if seenAdd[k] {
				return badAction(i, "add.path", "%q added twice", a.Add.Path)
			}
			seenAdd[k] = true
		case a.Remove != nil:
			if _, err := DataPath(a.Remove.Path); err != nil {
				return badAction(i, "remove.path", "%v", err)
			}
			if req.BlindAppend {
				return badAction(i, "remove", "a blind append cannot remove files")
			}
			if appendOnly && a.Remove.DataChange {
				return badAction(i, "remove", "the table is append-only (%s=true): files may only be removed with dataChange=false", PropAppendOnly)
			}
			k := CanonicalPath(a.Remove.Path, "")
			if seenRemove[k] {
				return badAction(i, "remove.path", "%q removed twice", a.Remove.Path)
			}
			seenRemove[k] = true
		case a.Txn != nil:
			if a.Txn.AppID == "" {
				return badAction(i, "txn.appId", "empty")
			}
			if seenTxn[a.Txn.AppID] {
				return badAction(i, "txn.appId", "%q twice", a.Txn.AppID)
			}
			seenTxn[a.Txn.AppID] = true
		case a.MetaData != nil || a.Protocol != nil:
			if req.BlindAppend {
				return badAction(i, a.Kind(), "a blind append cannot change %s", a.Kind())
			}
		}
	}
	return nil
}

// checkPartitionValues checks an add's partition values against the
// partition columns' types.
func checkPartitionValues(types map[string]DataType, values map[string]string) *CommitError {
	ok := true
	for k, v := range values {
		if t, known := types[k]; !known {
			ok = false
		} else if _, err := ParsePartitionValue(t, v); err != nil {
			ok = false
		}
	}
	if ok {
		return nil
	}
	// Name the first bad value in key order, so the answer is stable.
	for _, k := range sortedKeys(values) {
		field := "add.partitionValues[" + strconv.Quote(k) + "]"
		t, ok := types[k]
		if !ok {
			return &CommitError{Field: field, Reason: "not a partition column"}
		}
		if _, err := ParsePartitionValue(t, values[k]); err != nil {
			return &CommitError{Field: field, Reason: err.Error()}
		}
	}
	return nil
}

// checkNewMetadata checks a metaData action: column names, partition
// columns, properties, and that in-commit timestamps have their feature.
func checkNewMetadata(meta *Metadata, proto *Protocol, schema *StructType) error {
	if err := CheckColumnNames(schema); err != nil {
		return &CommitError{Field: "metaData.schemaString", Reason: err.Error()}
	}
	seen := map[string]bool{}
	for j, c := range meta.PartitionColumns {
		field := "metaData.partitionColumns[" + strconv.Itoa(j) + "]"
		f := schema.Field(c)
		switch {
		case f == nil:
			return &CommitError{Field: field, Reason: fmt.Sprintf("%q is not a column", c)}
		case seen[c]:
			return &CommitError{Field: field, Reason: fmt.Sprintf("%q appears twice", c)}
		case !CanPartitionBy(f.Type):
			return &CommitError{Field: field, Reason: fmt.Sprintf("%q has type %s, which cannot partition", c, f.Type.TypeName())}
		}
		if err := CheckPartitionColumnName(c); err != nil {
			return &CommitError{Field: field, Reason: err.Error()}
		}
		seen[c] = true
	}
	if err := CheckConfiguration(meta.Configuration); err != nil {
		pe := err.(*PropertyError)
		return &CommitError{Field: "metaData.configuration[" + strconv.Quote(pe.Key) + "]", Reason: pe.Error()}
	}
	if ictEnabled(meta) && !hasWriterFeature(proto, "inCommitTimestamp") {
		return &CommitError{Field: "metaData.configuration[" + strconv.Quote(PropEnableInCommitTimes) + "]",
			Reason: "in-commit timestamps need writer version 7 with the inCommitTimestamp writer feature (see UpgradeProtocol)"}
	}
	if schema.UsesType(TimestampNTZ) && !(hasWriterFeature(proto, "timestampNtz") && slices.Contains(proto.ReaderFeatures, "timestampNtz")) {
		return &CommitError{Field: "metaData.schemaString",
			Reason: "timestamp_ntz columns need the timestampNtz reader and writer features (see UpgradeProtocol)"}
	}
	return nil
}

func hasWriterFeature(p *Protocol, f string) bool {
	return p.MinWriterVersion == 7 && slices.Contains(p.WriterFeatures, f)
}

// ProtocolFor returns the lowest protocol that a table with this schema
// and configuration needs: (1,2), or what UpgradeProtocol makes of it when
// the table uses timestamp_ntz columns or in-commit timestamps.
func ProtocolFor(schema *StructType, conf map[string]string) Protocol {
	p, _ := UpgradeProtocol(Protocol{MinReaderVersion: 1, MinWriterVersion: 2}, schema, conf)
	return p
}

// UpgradeProtocol returns the protocol a table whose protocol is cur needs
// once its schema and configuration are these, and whether that differs
// from cur. When cur lacks a feature they use (inCommitTimestamp;
// timestampNtz, which also needs reader version 3), the result is writer
// version 7 listing the features cur had, those its legacy writer version
// implied (appendOnly and invariants for version 2), and the new ones.
func UpgradeProtocol(cur Protocol, schema *StructType, conf map[string]string) (Protocol, bool) {
	ntz := schema.UsesType(TimestampNTZ)
	ict := strings.EqualFold(conf[PropEnableInCommitTimes], "true")
	needNTZ := ntz && !(hasWriterFeature(&cur, "timestampNtz") && cur.MinReaderVersion == 3 && slices.Contains(cur.ReaderFeatures, "timestampNtz"))
	needICT := ict && !hasWriterFeature(&cur, "inCommitTimestamp")
	if !needNTZ && !needICT {
		return cur, false
	}
	p := Protocol{MinReaderVersion: cur.MinReaderVersion, MinWriterVersion: 7,
		ReaderFeatures: slices.Clone(cur.ReaderFeatures), WriterFeatures: slices.Clone(cur.WriterFeatures)}
	if cur.MinWriterVersion < 7 {
		p.WriterFeatures = nil
		if cur.MinWriterVersion >= 2 {
			p.WriterFeatures = []string{"appendOnly", "invariants"}
		}
	}
	add := func(list []string, f string) []string {
		if slices.Contains(list, f) {
			return list
		}
		return append(list, f)
	}
	if needNTZ {
		if p.MinReaderVersion < 3 {
			p.MinReaderVersion, p.ReaderFeatures = 3, nil
		}
		p.ReaderFeatures = add(p.ReaderFeatures, "timestampNtz")
		p.WriterFeatures = add(p.WriterFeatures, "timestampNtz")
	}
	if needICT {
		p.WriterFeatures = add(p.WriterFeatures, "inCommitTimestamp")
	}
	return p, true
}

// PrepareCreate checks the protocol and metadata of a new table's version 0
// as PrepareCommit checks a metaData action, filling in what may be left
// out: a zero protocol becomes ProtocolFor's, an empty format provider
// "parquet". It returns the protocol to write.
func PrepareCreate(meta *Metadata, proto Protocol) (Protocol, error) {
	schema, err := ParseSchema(meta.SchemaString)
	if err != nil {
		return proto, &CommitError{Action: -1, Field: "metaData.schemaString", Reason: err.Error()}
	}
	if proto.MinReaderVersion == 0 && proto.MinWriterVersion == 0 {
		proto = ProtocolFor(schema, meta.Configuration)
	}
	if err := checkWritable(&proto); err != nil {
		return proto, err
	}
	if err := checkReadable(&proto, meta); err != nil {
		return proto, err
	}
	if err := checkNewMetadata(meta, &proto, schema); err != nil {
		if ce, ok := err.(*CommitError); ok {
			ce.Action = -1
		}
		return proto, err
	}
	if rules := rowRules(meta.Configuration, schema); len(rules) > 0 {
		return proto, rowRuleError(rules[0], "a table with it could take no data from this library")
	}
	if meta.Format.Provider == "" {
		meta.Format.Provider = "parquet"
	}
	return proto, nil
}

// schemaCache holds schemas parsed by validate, by schema string: every
// commit checks its adds' partition values against the table's schema,
// which rarely changes, and parsing it again was most of PrepareCommit's
// work. The schemas in it are shared: nothing may modify them.
var schemaCache struct {
	mu sync.Mutex
	m  map[string]*StructType
}

// maxCachedSchemas bounds schemaCache; when it is full it starts over.
const maxCachedSchemas = 64

// parseSchemaCached is ParseSchema through schemaCache. The result must
// not be modified.
func parseSchemaCached(s string) (*StructType, error) {
	schemaCache.mu.Lock()
	st, ok := schemaCache.m[s]
	schemaCache.mu.Unlock()
	if ok {
		return st, nil
	}
	st, err := ParseSchema(s)
	if err != nil {
		return nil, err
	}
	schemaCache.mu.Lock()
	if schemaCache.m == nil || len(schemaCache.m) >= maxCachedSchemas {
		schemaCache.m = make(map[string]*StructType)
	}
	schemaCache.m[s] = st
	schemaCache.mu.Unlock()
	return st, nil
}
