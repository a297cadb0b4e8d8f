package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/services/catalog/internal/warehouse"
)

// CommitRequest is a transaction a client asks the catalog to commit
// (DESIGN.md section 4).
type CommitRequest struct {
	// Table is `schema.table`.
	Table string
	// ReadVersion is the version the transaction read.
	ReadVersion int64
	// Operation names the commit in the history ("WRITE" if empty).
	Operation           string
	OperationParameters map[string]string
	Adds                []delta.Add
	Removes             []delta.Remove
	Txns                []delta.Txn
	// Metadata, when set, replaces the table's schema and configuration.
	// The schema must stay compatible with the table's (see newMetadata).
	Metadata *delta.Metadata
	// OperationMetrics are added to commitInfo.operationMetrics.
	OperationMetrics map[string]string
	// BlindAppend is true for a pure append that read nothing.
	BlindAppend bool
	// ReadAppIDs are app ids whose txn versions the transaction read; the
	// app ids of Txns count as read too.
	ReadAppIDs []string
	// ReadFiles are the files whose contents decided the commit.
	ReadFiles []string
}

// CommitResult is an acknowledged commit.
type CommitResult struct {
	// Version is the table version that holds the commit. Blind appends
	// committed together share one version.
	Version int64
	// Time is the commit time.
	Time time.Time
}

// prepared is a validated request with decoded paths, ready for the
// table's writer.
type prepared struct {
	req         *CommitRequest
	removePaths []string // canonical
	readFiles   []string // canonical
	readApps    []string
	// delta is the request prepared by the delta library, the one commit
	// path of every writer: its checks, commitInfo and conflict checker.
	delta     *delta.PreparedCommit
	groupable bool
	metadata  *delta.Metadata
	// protocol is the upgrade the metadata change needs, if any.
	protocol *delta.Protocol
	rows     int64
	result   chan commitOutcome
}

type commitOutcome struct {
	version int64
	time    time.Time
	err     error
}

// Commit validates req, checks it against every commit since its read
// version, and writes it as a new version. Errors wrap ErrNotFound,
// ErrInvalidArgument (a *FieldError) or ErrConflict (a *ConflictError).
func (c *Catalog) Commit(ctx context.Context, req *CommitRequest) (CommitResult, error) {
	t, err := c.table(ctx, req.Table, "table")
	if err != nil {
		return CommitResult{}, err
	}
	p, err := t.prepare(ctx, req)
	if err != nil {
		return CommitResult{}, err
	}
	lead, err := t.enqueue(p)
	if err != nil {
		return CommitResult{}, err
	}
	if lead {
		t.lead()
	}
	select {
	case out := <-p.result:
		if out.err == nil {
			t.spare()
		}
		return CommitResult{Version: out.version, Time: out.time}, out.err
	case <-ctx.Done():
		// The commit may still land; the client learns from the log.
		return CommitResult{}, fmt.Errorf("waiting for commit: %w", ctx.Err())
	}
}

// prepare checks everything that does not depend on concurrent commits,
// in the caller's goroutine so that file checks of many clients run in
// parallel.
func (t *table) prepare(ctx context.Context, req *CommitRequest) (*prepared, error) {
	t.mu.RLock()
	head := t.st.head()
	schema := t.st.schema
	t.mu.RUnlock()
	latest, md := head.Version, head.Metadata

	p := &prepared{req: req, result: make(chan commitOutcome, 1)}
	switch {
	case req.ReadVersion < 0:
		return nil, badField("read_version", "must be >= 0")
	case req.ReadVersion > latest:
		return nil, badField("read_version", "%d is ahead of the table's latest version %d", req.ReadVersion, latest)
	}
	if len(req.Adds) == 0 && len(req.Removes) == 0 && len(req.Txns) == 0 && req.Metadata == nil {
		return nil, badField("adds", "the commit has no actions")
	}
	if req.Operation == "" {
		req.Operation = "WRITE"
	}
	if req.BlindAppend {
		if len(req.Removes) > 0 {
			return nil, badField("blind_append", "a blind append cannot remove files")
		}
		if req.Metadata != nil {
			return nil, badField("blind_append", "a blind append cannot change metadata")
		}
		if len(req.ReadFiles) > 0 {
			return nil, badField("blind_append", "a blind append reads no files")
		}
	}

	seen := map[string]bool{}
	for i := range req.Adds {
		a := &req.Adds[i]
		f := "adds[" + strconv.Itoa(i) + "]"
		rel, err := warehouse.DataPath(a.Path)
		if err != nil {
			return nil, badField(f+".path", "%v", err)
		}
		if seen[rel] {
			return nil, badField(f+".path", "%q added twice", a.Path)
		}
		seen[rel] = true
		if a.Stats != "" && !json.Valid([]byte(a.Stats)) {
			return nil, badField(f+".stats", "not valid JSON")
		}
		if len(a.DeletionVector) > 0 {
			return nil, badField(f+".deletion_vector", "deletion vectors are not supported")
		}
		lfi, err := warehouse.CheckNoSymlinks(t.dir, rel)
		if err != nil {
			return nil, badField(f+".path", "%v", err)
		}
		var fi storage.FileInfo
		if lfi != nil {
			// Without links, lstat's answer is stat's.
			fi = storage.FileInfo{Path: rel, ModTime: lfi.ModTime(), IsDir: lfi.IsDir(), Size: lfi.Size()}
		} else {
			fi, err = t.store.Stat(ctx, rel)
		}
		switch {
		case errors.Is(err, storage.ErrNotExist):
			return nil, badField(f+".path", "file %q does not exist in the table", a.Path)
		case err != nil:
			return nil, fmt.Errorf("stat %s: %w", rel, err)
		case fi.IsDir:
			return nil, badField(f+".path", "%q is a directory", a.Path)
		case fi.Size != a.Size:
			return nil, badField(f+".size", "is %d but the file has %d bytes", a.Size, fi.Size)
		}
		if a.ModificationTime == 0 {
			a.ModificationTime = fi.ModTime.UnixMilli()
		}
		if a.DataChange {
			p.rows += numRecords(a.Stats)
		}
	}
	seen = map[string]bool{}
	for i := range req.Removes {
		r := &req.Removes[i]
		f := "removes[" + strconv.Itoa(i) + "].path"
		rel, err := warehouse.DataPath(r.Path)
		if err != nil {
			return nil, badField(f, "%v", err)
		}
		if seen[rel] {
			return nil, badField(f, "%q removed twice", r.Path)
		}
		seen[rel] = true
		p.removePaths = append(p.removePaths, rel)
	}
	for i, rf := range req.ReadFiles {
		rel, err := warehouse.DataPath(rf)
		if err != nil {
			return nil, badField("read_files["+strconv.Itoa(i)+"]", "%v", err)
		}
		p.readFiles = append(p.readFiles, rel)
	}
	apps := map[string]bool{}
	for i, x := range req.Txns {
		f := "txns[" + strconv.Itoa(i) + "]"
		switch {
		case x.AppID == "":
			return nil, badField(f+".app_id", "empty")
		case apps[x.AppID]:
			return nil, badField(f+".app_id", "%q appears twice", x.AppID)
		case x.Version < 0:
			return nil, badField(f+".version", "must be >= 0")
		}
		apps[x.AppID] = true
	}
	for i, app := range req.ReadAppIDs {
		if app == "" {
			return nil, badField("read_app_ids["+strconv.Itoa(i)+"]", "empty")
		}
		apps[app] = true
	}
	p.readApps = slices.Sorted(maps.Keys(apps))

	if req.Metadata != nil {
		nm, err := newMetadata(md, schema, req.Metadata, t.minVacuumRetention)
		if err != nil {
			return nil, err
		}
		p.metadata = nm
		// A table that starts using a feature (in-commit timestamps, a
		// timestamp_ntz column) gets the protocol that lists it.
		ns, err := nm.Schema()
		if err != nil {
			return nil, badField("metadata.schema_json", "%v", err)
		}
		if up, changed := delta.UpgradeProtocol(head.Protocol, ns, nm.Configuration); changed {
			p.protocol = &up
		}
	}
	p.groupable = req.BlindAppend && len(req.Removes) == 0 && req.Metadata == nil && allDataChange(req.Adds)
	dreq, fields := deltaRequest(req, p)
	var err error
	p.delta, err = delta.PrepareCommit(dreq, head)
	if err != nil {
		var ce *delta.CommitError
		if errors.As(err, &ce) {
			return nil, badField(requestField(fields, ce), "%s", ce.Reason)
		}
		return nil, err
	}
	return p, nil
}

// deltaRequest is the request as the delta library commits it: the
// metadata change, txns, removes and adds, the app ids read (txns included)
// and the files read. fields names each action as the request does.
func deltaRequest(req *CommitRequest, p *prepared) (delta.CommitRequest, []string) {
	n := len(req.Adds) + len(req.Removes) + len(req.Txns) + 1
	acts := make([]delta.Action, 0, n)
	fields := make([]string, 0, n)
	if p.protocol != nil {
		acts = append(acts, delta.Action{Protocol: p.protocol})
		fields = append(fields, "metadata")
	}
	if p.metadata != nil {
		acts = append(acts, delta.Action{MetaData: p.metadata})
		fields = append(fields, "metadata")
	}
	for i := range req.Txns {
		acts = append(acts, delta.Action{Txn: &req.Txns[i]})
		fields = append(fields, "txns["+strconv.Itoa(i)+"]")
	}
	for i := range req.Removes {
		acts = append(acts, delta.Action{Remove: &req.Removes[i]})
		fields = append(fields, "removes["+strconv.Itoa(i)+"]")
	}
	for i := range req.Adds {
		acts = append(acts, delta.Action{Add: &req.Adds[i]})
		fields = append(fields, "adds["+strconv.Itoa(i)+"]")
	}
	return delta.CommitRequest{
		ReadVersion:         req.ReadVersion,
		Operation:           req.Operation,
		OperationParameters: req.OperationParameters,
		Actions:             acts,
		BlindAppend:         req.BlindAppend,
		ReadAppIDs:          p.readApps,
		ReadFiles:           req.ReadFiles,
		EngineInfo:          "plantlake-catalog",
	}, fields
}

// requestField names, in the request's terms ("adds[3].partition_values[\"day\"]"),
// the field a delta.CommitError names in the log's ("actions[5].add.partitionValues[\"day\"]").
func requestField(actionFields []string, ce *delta.CommitError) string {
	field := ce.Field
	base := ""
	if ce.Action >= 0 && ce.Action < len(actionFields) {
		base = actionFields[ce.Action]
		_, field, _ = strings.Cut(field, ".") // drop the action kind
	}
	name, rest, _ := strings.Cut(field, "[")
	if rest != "" {
		rest = "[" + rest
	}
	switch name {
	case "schemaString":
		name = "schema_json"
	default:
		name = snakeCase(name)
	}
	switch {
	case base == "":
		return name + rest
	case name == "":
		return base
	}
	return base + "." + name + rest
}

// snakeCase turns a log field name ("partitionValues") into the request's
// ("partition_values").
func snakeCase(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func allDataChange(adds []delta.Add) bool {
	for _, a := range adds {
		if !a.DataChange {
			return false
		}
	}
	return true
}

// newMetadata validates a metadata change against the table's metadata. A
// request that sets metadata asks for the change; the new schema must still
// read every existing file: columns keep their names and types (nullability
// may only loosen) and new columns are nullable.
func newMetadata(cur delta.Metadata, curSchema *delta.StructType, req *delta.Metadata, minVacuumRetention time.Duration) (*delta.Metadata, error) {
	schema, err := delta.ParseSchema(req.SchemaString)
	if err != nil {
		return nil, badField("metadata.schema_json", "%v", err)
	}
	if !slices.Equal(nonNilSlice(req.PartitionColumns), nonNilSlice(cur.PartitionColumns)) {
		return nil, badField("metadata.partition_columns", "cannot change partition columns from %v to %v", cur.PartitionColumns, req.PartitionColumns)
	}
	if err := compatibleSchema(curSchema, schema); err != nil {
		return nil, badField("metadata.schema_json", "%v", err)
	}
	if err := checkProperties(req.Configuration, minVacuumRetention, "metadata.configuration"); err != nil {
		return nil, err
	}
	nm := cur
	s, err := schema.SchemaString()
	if err != nil {
		return nil, badField("metadata.schema_json", "%v", err)
	}
	nm.SchemaString = s
	nm.Configuration = nonNilMap(req.Configuration)
	return &nm, nil
}

// compatibleSchema checks that next can replace cur without rewriting data.
func compatibleSchema(cur, next *delta.StructType) error {
	for _, f := range cur.Fields {
		nf := next.Field(f.Name)
		if nf == nil {
			return fmt.Errorf("column %q is missing (dropping columns needs column mapping, which is not supported)", f.Name)
		}
		a, _ := json.Marshal(f.Type)
		b, _ := json.Marshal(nf.Type)
		if string(a) != string(b) {
			return fmt.Errorf("column %q changes type from %s to %s", f.Name, a, b)
		}
		if f.Nullable && !nf.Nullable {
			return fmt.Errorf("column %q cannot become non-nullable", f.Name)
		}
	}
	for _, nf := range next.Fields {
		if cur.Field(nf.Name) == nil && !nf.Nullable {
			return fmt.Errorf("new column %q must be nullable", nf.Name)
		}
	}
	return nil
}

// numRecords reads numRecords from an add's stats (valid JSON: prepare
// checked them); 0 when absent or not an integer. It looks for the key at
// the top level of the stats itself, as every commit counts its rows, and
// leaves to encoding/json what that scan does not settle (escaped or
// differently cased keys, values that are not plain integers).
func numRecords(stats string) int64 {
	if n, ok := scanNumRecords(stats); ok {
		return n
	}
	var s struct {
		NumRecords int64 `json:"numRecords"`
	}
	if json.Unmarshal([]byte(stats), &s) != nil {
		return 0
	}
	return s.NumRecords
}

// scanNumRecords finds numRecords in a stats object. ok is false when the
// answer needs encoding/json: a key with escapes or matching numRecords
// only when case is ignored (encoding/json matches keys without regard to
// case), a numRecords that is not a plain int64, or anything unexpected.
// Like encoding/json, the last numRecords counts.
func scanNumRecords(s string) (n int64, ok bool) {
	i := skipSpace(s, 0)
	if s == "" {
		return 0, true
	}
	if i >= len(s) || s[i] != '{' {
		return 0, false
	}
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		return 0, true
	}
	for i < len(s) {
		if s[i] != '"' {
			return 0, false
		}
		end := strings.IndexByte(s[i+1:], '"')
		if end < 0 {
			return 0, false
		}
		key := s[i+1 : i+1+end]
		if strings.IndexByte(key, '\\') >= 0 {
			return 0, false
		}
		i = skipSpace(s, i+end+2)
		if i >= len(s) || s[i] != ':' {
			return 0, false
		}
		i = skipSpace(s, i+1)
		start := i
		if i = skipValue(s, i); i < 0 {
			return 0, false
		}
		switch {
		case key == "numRecords":
			v, err := strconv.ParseInt(strings.TrimRight(s[start:i], " \t\r\n"), 10, 64)
			if err != nil {
				return 0, false
			}
			n = v
		case strings.EqualFold(key, "numRecords"):
			return 0, false
		}
		i = skipSpace(s, i)
		if i >= len(s) {
			return 0, false
		}
		switch s[i] {
		case '}':
			return n, skipSpace(s, i+1) == len(s)
		case ',':
			i = skipSpace(s, i+1)
		default:
			return 0, false
		}
	}
	return 0, false
}

// skipValue returns the index after the JSON value at s[i:], -1 if there
// is none.
func skipValue(s string, i int) int {
	depth := 0
	for i < len(s) {
		switch c := s[i]; c {
		case '"':
			i++
			for i < len(s) && s[i] != '"' {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(s) {
				return -1
			}
			i++
		case '{', '[':
			depth++
			i++
		case '}', ']':
			if depth == 0 {
				return i
			}
			depth--
			i++
		case ',':
			if depth == 0 {
				return i
			}
			i++
		default:
			i++
		}
		if depth == 0 && i < len(s) && (s[i] == ',' || s[i] == '}' || s[i] == ']') {
			return i
		}
	}
	if depth != 0 {
		return -1
	}
	return i
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n') {
		i++
	}
	return i
}

// enqueue hands a prepared commit to the table's writer. When no commit of
// the table is being written, the caller becomes the writer (lead is true)
// and must call lead: a client committing alone then writes its own commit
// in its own goroutine, without waking the writer goroutine and being woken
// back (two goroutine switches, which on a busy machine each wait for a
// core; see docs/decisions.md, Catalog).
func (t *table) enqueue(p *prepared) (lead bool, err error) {
	t.qmu.Lock()
	defer t.qmu.Unlock()
	if t.closed {
		return false, ErrClosed
	}
	t.queue = append(t.queue, p)
	if t.writing {
		return false, nil // the writer takes it with its next round
	}
	t.writing = true
	t.leaders.Add(1)
	return true, nil
}

// lead writes what is queued, the caller's own commit among it, as the
// table's writer for one round. Commits queued meanwhile (other clients
// arriving while the round's fsyncs ran) are handed to the writer
// goroutine, which groups them, so that no caller writes for others
// indefinitely.
func (t *table) lead() {
	defer t.leaders.Done()
	t.qmu.Lock()
	q := t.queue
	t.queue = nil
	t.qmu.Unlock()
	t.process(t.ctx, q)
	t.qmu.Lock()
	if len(t.queue) == 0 || t.closed {
		t.writing = false
	} else {
		// writing stays true: the writer goroutine owns the queue now.
		t.wake <- struct{}{} // never blocks: only the owner of writing sends
	}
	t.qmu.Unlock()
}

// writeLoop is the table's writer goroutine: it writes the commits a
// leader handed over, round by round until the queue is empty. It and the
// leaders are the only ones that commit to the table, and never at once (the
// writing flag), so commits to one table are serialized while tables commit
// in parallel. When ctx ends it fails what is queued and waits for a
// leader still writing.
func (t *table) writeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			t.qmu.Lock()
			t.closed = true
			q := t.queue
			t.queue = nil
			t.qmu.Unlock()
			for _, p := range q {
				p.result <- commitOutcome{err: ErrClosed}
			}
			t.leaders.Wait()
			if t.logFolder != nil {
				if err := t.logFolder.Close(); err != nil {
					t.log.Warn("removing the next commit's temporary file", "err", err)
				}
			}
			return
		case <-t.wake:
		}
		for {
			t.qmu.Lock()
			q := t.queue
			t.queue = nil
			if len(q) == 0 || t.closed {
				t.writing = false
				t.qmu.Unlock()
				for _, p := range q {
					p.result <- commitOutcome{err: ErrClosed}
				}
				break
			}
			t.qmu.Unlock()
			t.process(ctx, q)
		}
	}
}

// process commits a batch of waiting requests in arrival order. Consecutive
// blind appends with the same operation and distinct txn app ids go into one
// version; everything else gets a version of its own. A request that
// conflicts is aborted alone.
func (t *table) process(ctx context.Context, q []*prepared) {
	for i := 0; i < len(q); {
		p := q[i]
		i++
		if err := t.check(ctx, p); err != nil {
			t.outcome(err)
			p.result <- commitOutcome{err: err}
			continue
		}
		group := []*prepared{p}
		if p.groupable {
			// One version may hold each txn app id and each path once.
			apps, paths := map[string]bool{}, map[string]bool{}
			for _, a := range p.readApps {
				apps[a] = true
			}
			for _, a := range p.req.Adds {
				paths[delta.CanonicalPath(a.Path, "")] = true
			}
			for i < len(q) && len(group) < t.maxGroup && q[i].groupable && q[i].req.Operation == p.req.Operation &&
				!overlaps(apps, q[i].readApps) && !overlapsAdds(paths, q[i].req.Adds) {
				if err := t.check(ctx, q[i]); err != nil {
					t.outcome(err)
					q[i].result <- commitOutcome{err: err}
					i++
					continue
				}
				for _, a := range q[i].readApps {
					apps[a] = true
				}
				for _, a := range q[i].req.Adds {
					paths[delta.CanonicalPath(a.Path, "")] = true
				}
				group = append(group, q[i])
				i++
			}
		}
		v, ts, err := t.write(ctx, group)
		for _, g := range group {
			t.outcome(err)
			g.result <- commitOutcome{version: v, time: ts, err: err}
		}
	}
}

func overlapsAdds(paths map[string]bool, adds []delta.Add) bool {
	for _, a := range adds {
		if paths[delta.CanonicalPath(a.Path, "")] {
			return true
		}
	}
	return false
}

func overlaps(set map[string]bool, apps []string) bool {
	for _, a := range apps {
		if set[a] {
			return true
		}
	}
	return false
}

// check checks that the files the request removes or read are live (or
// were removed by a concurrent commit, which then conflicts), and applies
// the conflict rules of DESIGN.md section 4 — delta.ConflictChecker — to
// every version after the request's read version. What a request read, for
// concurrent adds: the partitions of the files it read or removes; a
// non-blind request that names no such file read the whole table.
func (t *table) check(ctx context.Context, p *prepared) error {
	st := t.st // only the writer goroutine replaces or mutates t.st
	ws, err := st.winners(ctx, t.store, p.req.ReadVersion)
	if err != nil {
		return err
	}
	wholeTable := !p.req.BlindAppend && len(p.readFiles) == 0 && len(p.removePaths) == 0
	var readPartitions []map[string]string
	parts := map[string]bool{}
	for _, set := range []struct {
		field string // with %d for the index
		paths []string
	}{{"removes[%d].path", p.removePaths}, {"read_files[%d]", p.readFiles}} {
		for i, f := range set.paths {
			a, ok := st.files[f]
			if !ok {
				if removedBy(ws, f) {
					continue // the conflict check below reports the winner
				}
				return badField(fmt.Sprintf(set.field, i), "%q is not a live file of the table", f)
			}
			if k := partitionKey(st.metadata.PartitionColumns, a.PartitionValues); !parts[k] {
				parts[k] = true
				readPartitions = append(readPartitions, a.PartitionValues)
			}
		}
	}
	if len(ws) == 0 {
		return nil
	}
	cc := p.delta.ConflictChecker("", readPartitions, wholeTable)
	for i := range ws {
		if err := cc.CheckSummary(&ws[i]); err != nil {
			var ce *delta.ConflictError
			if errors.As(err, &ce) {
				return &ConflictError{WinnerVersion: ce.WinnerVersion, Reason: ce.Reason}
			}
			return err
		}
	}
	return nil
}

// removedBy reports whether one of the winners removed the file at the
// canonical path f.
func removedBy(ws []delta.CommitSummary, f string) bool {
	for i := range ws {
		if slices.Contains(ws[i].Removed, f) {
			return true
		}
	}
	return false
}

// write commits a group as the next version and advances the state. The
// commitInfo is the first request's (without a read version when several
// share the version) with the group's operation metrics; delta.EncodeVersion
// sets its timestamps, the in-commit timestamp included.
func (t *table) write(ctx context.Context, group []*prepared) (int64, time.Time, error) {
	st := t.st
	version := st.version + 1
	now := time.Now()
	if !now.After(st.timestamp) {
		now = st.timestamp.Add(time.Millisecond)
	}
	ms := now.UnixMilli()
	first := group[0]
	info := first.delta.CommitInfo()
	if len(group) > 1 {
		info.ReadVersion = nil
	}
	var body []delta.Action
	var nAdd, nRem, rows, bytes int64
	for _, p := range group {
		for _, a := range p.delta.Actions() {
			switch {
			case a.Txn != nil:
				x := *a.Txn
				if x.LastUpdated == nil {
					x.LastUpdated = &ms
				}
				a = delta.Action{Txn: &x}
			case a.Remove != nil:
				r := *a.Remove
				if r.DeletionTimestamp == nil {
					r.DeletionTimestamp = &ms
				}
				if live, ok := st.files[delta.CanonicalPath(r.Path, "")]; ok {
					if r.PartitionValues == nil {
						r.PartitionValues = live.PartitionValues
					}
					if r.Size == nil {
						size := live.Size
						r.Size = &size
					}
					if r.Stats == "" {
						r.Stats = live.Stats
					}
					ext := true
					r.ExtendedFileMetadata = &ext
				}
				a = delta.Action{Remove: &r}
				nRem++
			case a.Add != nil:
				nAdd++
				bytes += a.Add.Size
			}
			body = append(body, a)
		}
		rows += p.rows
	}
	metrics := map[string]string{
		"numFiles":        strconv.FormatInt(nAdd, 10),
		"numRemovedFiles": strconv.FormatInt(nRem, 10),
		"numOutputRows":   strconv.FormatInt(rows, 10),
		"numOutputBytes":  strconv.FormatInt(bytes, 10),
		"numTransactions": strconv.Itoa(len(group)),
	}
	if len(group) == 1 {
		for k, v := range first.req.OperationMetrics {
			metrics[k] = v
		}
	}
	mb, _ := json.Marshal(metrics)
	info.Extra["operationMetrics"] = mb

	enc, err := delta.EncodeVersion(st.head(), info, body, now)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("encode version %d: %w", version, err)
	}
	if err := t.putVersion(ctx, version, enc.Data); err != nil {
		// Whatever happened, the log is the truth: read it again.
		if rerr := t.reload(ctx); rerr != nil {
			t.log.Error("reloading table after failed commit", "table", t.name, "err", rerr)
		}
		if errors.Is(err, storage.ErrExists) {
			return 0, time.Time{}, &ConflictError{WinnerVersion: version, Reason: "another writer committed this version"}
		}
		return 0, time.Time{}, fmt.Errorf("write version %d: %w", version, err)
	}
	t.mu.Lock()
	err = st.apply(version, enc.Time, enc.Actions)
	t.mu.Unlock()
	if err != nil {
		// Cannot happen for actions we built; keep the state honest anyway.
		t.log.Error("applying own commit", "table", t.name, "version", version, "err", err)
		if rerr := t.reload(ctx); rerr != nil {
			t.log.Error("reloading table", "table", t.name, "err", rerr)
		}
	}
	t.committed(CommitEvent{
		Table: t.name.String(), Version: version, Operation: first.req.Operation, Timestamp: enc.Time,
		FilesAdded: nAdd, FilesRemoved: nRem, RowsAdded: rows, BytesAdded: bytes,
	})
	return version, enc.Time, nil
}

// putVersion writes the commit file of version, through the held log
// folder on a local warehouse (the same put-if-absent as the store's).
func (t *table) putVersion(ctx context.Context, version int64, data []byte) error {
	if t.logFolder == nil {
		return t.store.PutIfAbsent(ctx, delta.CommitPath(version), data)
	}
	return t.logFolder.PutIfAbsent(ctx, path.Base(delta.CommitPath(version)), data)
}

// spareDelay is how long after a commit's reply the next commit's
// temporary file is created (see spare).
const spareDelay = time.Millisecond

// spare has the temporary file of the table's next commit created in the
// background, once a commit was acknowledged: the file's creation (an
// inode and a folder entry, which wait on the file system's journal) then
// happens between commits instead of in the next commit's critical path.
// The next commit still syncs the file, links it and syncs the folder.
//
// The creation waits spareDelay first, so that it does not run while the
// reply is being sent: gRPC's writer yields once (runtime.Gosched, to the
// global run queue) before it flushes a small reply, and a goroutine started
// here ran on that processor in the meantime and blocked it in the file's
// creation (0.5–1 ms on a busy journal), with no other processor woken to
// take the writer: the reply left only after the creation (one client's
// reply leg: p50 ~500 µs with the goroutine started at once, ~120 µs with
// the delay). A commit that comes before the spare is made makes its own
// temporary file, as without a spare.
func (t *table) spare() {
	if t.logFolder == nil || !t.sparing.CompareAndSwap(false, true) {
		return
	}
	time.AfterFunc(spareDelay, func() {
		defer t.sparing.Store(false)
		if err := t.logFolder.Spare(); err != nil {
			t.log.Warn("creating the next commit's temporary file", "err", err)
		}
	})
}

// reload replaces the state with the log's latest snapshot.
func (t *table) reload(ctx context.Context) error {
	st, err := loadState(ctx, t.store)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.st = st
	t.mu.Unlock()
	return nil
}
