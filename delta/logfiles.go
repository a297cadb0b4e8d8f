package delta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/plantlake/plantlake/delta/storage"
)

// LogDir is the name of a table's log directory.
const LogDir = "_delta_log"

const (
	lastCheckpointPath = LogDir + "/_last_checkpoint"
	sidecarDir         = LogDir + "/_sidecars"
)

// CommitPath returns the path of the commit file of version v, relative to
// the table root.
func CommitPath(v int64) string { return fmt.Sprintf("%s/%020d.json", LogDir, v) }

// CheckpointPath returns the path of the classic single-file checkpoint of
// version v, relative to the table root.
func CheckpointPath(v int64) string { return fmt.Sprintf("%s/%020d.checkpoint.parquet", LogDir, v) }

// checksumPath is the log path of version v's checksum (.crc) file.
func checksumPath(v int64) string { return fmt.Sprintf("%s/%020d.crc", LogDir, v) }

// logFileKind is what a file in _delta_log is.
type logFileKind int

const (
	kindOther logFileKind = iota
	kindCommit
	kindCheckpointClassic
	kindCheckpointPart
	kindCheckpointV2
	kindCompaction
	kindChecksum
)

// logFile is a parsed _delta_log entry.
type logFile struct {
	info    storage.FileInfo
	kind    logFileKind
	version int64
	// part and parts number a multi-part checkpoint's files (1-based).
	part, parts int
	// endVersion is the last version of a log compaction file.
	endVersion int64
}

func parseVersion(s string) (int64, bool) {
	if len(s) != 20 {
		return 0, false
	}
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if v > (math.MaxInt64-d)/10 {
			return 0, false // overflows int64
		}
		v = v*10 + d
	}
	return v, true
}

// parseLogName classifies a file name in _delta_log.
func parseLogName(name string) (lf logFile) {
	lf.kind = kindOther
	if len(name) < 21 || name[20] != '.' {
		return lf
	}
	v, ok := parseVersion(name[:20])
	if !ok {
		return lf
	}
	lf.version = v
	rest := name[21:]
	switch {
	case rest == "json":
		lf.kind = kindCommit
	case rest == "crc":
		lf.kind = kindChecksum
	case rest == "checkpoint.parquet":
		lf.kind = kindCheckpointClassic
	case strings.HasPrefix(rest, "checkpoint."):
		mid := strings.TrimPrefix(rest, "checkpoint.")
		parts := strings.Split(mid, ".")
		if len(parts) == 3 && parts[2] == "parquet" && len(parts[0]) == 10 && len(parts[1]) == 10 {
			o, err1 := strconv.Atoi(parts[0])
			p, err2 := strconv.Atoi(parts[1])
			if err1 == nil && err2 == nil && o >= 1 && o <= p {
				lf.kind, lf.part, lf.parts = kindCheckpointPart, o, p
			}
			return lf
		}
		if len(parts) == 2 && (parts[1] == "json" || parts[1] == "parquet") && parts[0] != "" {
			lf.kind = kindCheckpointV2
		}
	case strings.HasSuffix(rest, ".compacted.json"):
		if end, ok := parseVersion(strings.TrimSuffix(rest, ".compacted.json")); ok && end > v {
			lf.kind, lf.endVersion = kindCompaction, end
		}
	}
	return lf
}

// checkpointRef is one complete checkpoint found in the log listing.
type checkpointRef struct {
	version int64
	kind    logFileKind
	files   []storage.FileInfo // one, or the parts in order
}

// logListing is the parsed listing of _delta_log.
type logListing struct {
	commits     map[int64]storage.FileInfo
	checkpoints []checkpointRef // ascending by version; per version: v2, classic, multi-part
	others      []logFile       // compactions, checksums and everything else
	minCommit   int64
	maxCommit   int64 // -1 when no commit

	// store and unstated support lazy metadata: with a NameLister, only the
	// entries replay of the latest version needs are stat-ed at listing.
	store    storage.Store
	unstated bool
}

// ErrNotATable is returned when a folder has no Delta log.
var ErrNotATable = errors.New("delta: not a Delta table")

func listLog(ctx context.Context, store storage.Store) (*logListing, error) {
	var infos []storage.FileInfo
	var names []string // base names of infos, when listed by name
	var err error
	lazy := false
	if ul, ok := store.(storage.UnorderedNameLister); ok {
		names, err = ul.ListNamesUnordered(ctx, LogDir)
		infos = namedInfos(names)
		lazy = true
	} else if nl, ok := store.(storage.NameLister); ok {
		names, err = nl.ListNames(ctx, LogDir)
		infos = namedInfos(names)
		lazy = true
	} else {
		infos, err = store.List(ctx, LogDir)
	}
	if errors.Is(err, storage.ErrNotExist) {
		return nil, fmt.Errorf("%w: no %s folder", ErrNotATable, LogDir)
	}
	if err != nil {
		return nil, fmt.Errorf("delta: list %s: %w", LogDir, err)
	}
	l := &logListing{commits: make(map[int64]storage.FileInfo, len(infos)), minCommit: -1, maxCommit: -1, store: store, unstated: lazy}
	parts := map[int64]map[int][]logFile{} // version → parts count → files
	for i, fi := range infos {
		if fi.IsDir {
			continue
		}
		var lf logFile
		if names != nil {
			lf = parseLogName(names[i])
		} else {
			lf = parseLogName(fi.Name())
		}
		lf.info = fi
		switch lf.kind {
		case kindCommit:
			l.commits[lf.version] = fi
			if l.minCommit < 0 || lf.version < l.minCommit {
				l.minCommit = lf.version
			}
			if lf.version > l.maxCommit {
				l.maxCommit = lf.version
			}
		case kindCheckpointClassic, kindCheckpointV2:
			l.checkpoints = append(l.checkpoints, checkpointRef{version: lf.version, kind: lf.kind, files: []storage.FileInfo{fi}})
		case kindCheckpointPart:
			if parts[lf.version] == nil {
				parts[lf.version] = map[int][]logFile{}
			}
			parts[lf.version][lf.parts] = append(parts[lf.version][lf.parts], lf)
		default:
			l.others = append(l.others, lf)
		}
	}
	for v, byCount := range parts {
		for n, files := range byCount {
			sort.Slice(files, func(i, j int) bool { return files[i].part < files[j].part })
			complete := len(files) == n
			for i := range files {
				if files[i].part != i+1 {
					complete = false
				}
			}
			if !complete {
				continue // readers must ignore multi-part checkpoints with missing parts
			}
			ref := checkpointRef{version: v, kind: kindCheckpointPart}
			for _, f := range files {
				ref.files = append(ref.files, f.info)
			}
			l.checkpoints = append(l.checkpoints, ref)
		}
	}
	rank := map[logFileKind]int{kindCheckpointV2: 0, kindCheckpointClassic: 1, kindCheckpointPart: 2}
	sort.SliceStable(l.checkpoints, func(i, j int) bool {
		a, b := l.checkpoints[i], l.checkpoints[j]
		if a.version != b.version {
			return a.version < b.version
		}
		if rank[a.kind] != rank[b.kind] {
			return rank[a.kind] < rank[b.kind]
		}
		return a.files[0].Path < b.files[0].Path // listings need not be sorted
	})
	if l.maxCommit < 0 && len(l.checkpoints) == 0 {
		return nil, fmt.Errorf("%w: %s has no commits", ErrNotATable, LogDir)
	}
	if lazy {
		// Stat what replay of the latest version needs: the newest
		// checkpoint and the commits from it on.
		floor := int64(0)
		if n := len(l.checkpoints); n > 0 {
			floor = l.checkpoints[n-1].version
		}
		if err := l.stat(ctx, floor); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// namedInfos returns a FileInfo with only the path for each name in the
// log directory. The paths are substrings of one string: a long log lists
// ten thousands of names.
func namedInfos(names []string) []storage.FileInfo {
	n := 0
	for _, name := range names {
		n += len(LogDir) + 1 + len(name)
	}
	var b strings.Builder
	b.Grow(n)
	for _, name := range names {
		b.WriteString(LogDir)
		b.WriteByte('/')
		b.WriteString(name)
	}
	all := b.String()
	infos := make([]storage.FileInfo, len(names))
	off := 0
	for i, name := range names {
		end := off + len(LogDir) + 1 + len(name)
		infos[i].Path = all[off:end]
		off = end
	}
	return infos
}

// stat fills in the metadata of entries at or after version floor.
func (l *logListing) stat(ctx context.Context, floor int64) error {
	fill := func(fi *storage.FileInfo) error {
		if !fi.ModTime.IsZero() {
			return nil
		}
		st, err := l.store.Stat(ctx, fi.Path)
		if err != nil && !errors.Is(err, storage.ErrNotExist) {
			return fmt.Errorf("delta: stat %s: %w", fi.Path, err)
		}
		if err == nil {
			fi.ModTime, fi.Size = st.ModTime, st.Size
		}
		return nil
	}
	for v, fi := range l.commits {
		if v >= floor {
			if err := fill(&fi); err != nil {
				return err
			}
			l.commits[v] = fi
		}
	}
	for i := range l.checkpoints {
		if l.checkpoints[i].version >= floor {
			for j := range l.checkpoints[i].files {
				if err := fill(&l.checkpoints[i].files[j]); err != nil {
					return err
				}
			}
		}
	}
	if floor <= 0 {
		for i := range l.others {
			if err := fill(&l.others[i].info); err != nil {
				return err
			}
		}
		l.unstated = false
	}
	return nil
}

// statAll fills in the metadata of every entry (time travel, history and
// cleanup need every commit's time).
func (l *logListing) statAll(ctx context.Context) error {
	if !l.unstated {
		return nil
	}
	return l.stat(ctx, -1)
}

// latestVersion is the newest version the listing can reconstruct.
func (l *logListing) latestVersion() int64 {
	v := l.maxCommit
	if n := len(l.checkpoints); n > 0 && l.checkpoints[n-1].version > v {
		v = l.checkpoints[n-1].version
	}
	return v
}

// LastCheckpoint is the content of _delta_log/_last_checkpoint.
type LastCheckpoint struct {
	Version       int64             `json:"version"`
	Size          int64             `json:"size"`
	Parts         *int              `json:"parts,omitempty"`
	SizeInBytes   *int64            `json:"sizeInBytes,omitempty"`
	NumOfAddFiles *int64            `json:"numOfAddFiles,omitempty"`
	Tags          map[string]string `json:"tags,omitempty"`
}

// readLastCheckpoint reads the hint; ok is false when it is missing, empty
// or not valid JSON — callers then rely on the listing alone.
func readLastCheckpoint(ctx context.Context, store storage.Store) (LastCheckpoint, bool) {
	b, err := store.ReadFile(ctx, lastCheckpointPath)
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		return LastCheckpoint{}, false
	}
	var lc LastCheckpoint
	if err := json.Unmarshal(b, &lc); err != nil || lc.Version < 0 {
		return LastCheckpoint{}, false
	}
	return lc, true
}

// commitTimeFromInfo is the modification time of a log file in ms.
func fileMillis(fi storage.FileInfo) int64 { return fi.ModTime.UnixMilli() }

func millisTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
