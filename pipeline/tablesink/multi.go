package tablesink

import (
	"context"
	"fmt"
	"sync"

	"github.com/plantlake/plantlake/pipeline"
)

// Output is one target's share of a batch.
type Output struct {
	Files []File
	Rows  int
	// Params are added to the target commit's operation parameters.
	Params map[string]string
}

// ReleaseOutputs frees the record batches of every output.
func ReleaseOutputs(outs []Output) {
	for _, o := range outs {
		Release(o.Files)
	}
}

// Multi is the sink of several target tables. A batch's data holds one
// Output per target, in the targets' order, which is the order of their
// commits (DESIGN: dead letters, then bronze).
//
// Multi is safe for concurrent use: the runner commits in the background
// while its source asks Limit.
type Multi struct {
	targets []*Target

	mu sync.Mutex
	// pos are each target's positions as last read or committed.
	pos []pipeline.Positions
}

// NewMulti returns the sink of targets, committed in that order.
func NewMulti(targets ...*Target) *Multi {
	return &Multi{targets: targets, pos: make([]pipeline.Positions, len(targets))}
}

// Targets are the sink's targets in commit order.
func (m *Multi) Targets() []*Target { return m.targets }

// Positions reads every target's positions of appIDs and returns the
// lowest of them: the source starts after it, and the targets that are
// ahead skip what they hold (see Limit). ReadVersion is the last target's.
func (m *Multi) Positions(ctx context.Context, appIDs []string) (pipeline.Positions, error) {
	read := make([]pipeline.Positions, len(m.targets))
	for i, t := range m.targets {
		p, err := t.Positions(ctx, appIDs)
		if err != nil {
			return pipeline.Positions{}, err
		}
		read[i] = p
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	copy(m.pos, read)
	out := pipeline.Positions{Versions: map[string]int64{}}
	for _, id := range appIDs {
		low, all := int64(0), true
		for i := range m.targets {
			v, ok := m.pos[i].Versions[id]
			if !ok {
				all = false
				break
			}
			if i == 0 || v < low {
				low = v
			}
		}
		if all {
			out.Versions[id] = low
		}
	}
	if n := len(m.pos); n > 0 {
		out.ReadVersion = m.pos[n-1].ReadVersion
	}
	return out, nil
}

// Limit is the highest position of appID the next batch may reach so that
// it never spans a target's position: the lowest target position above
// after (the source's position). ok is false when no target is ahead, i.e.
// the batch is unbounded by the targets.
func (m *Multi) Limit(appID string, after int64) (limit int64, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.targets {
		v, has := m.pos[i].Versions[appID]
		if has && v > after && (!ok || v < limit) {
			limit, ok = v, true
		}
	}
	return limit, ok
}

// Commit commits each target's output with the batch's txns, in order. A
// target that already holds every txn of the batch (it committed the batch
// before a crash stopped the next target's commit) is skipped; every other
// target commits, with no files when its output is empty, so that its
// position advances. A failure stops at that target: the runner drops the
// batch and reads the positions again, so the targets committed so far
// skip the batch the next time.
func (m *Multi) Commit(ctx context.Context, c pipeline.Commit[[]Output]) (pipeline.Committed, error) {
	if len(c.Data) != len(m.targets) {
		return pipeline.Committed{}, fmt.Errorf("batch has %d outputs for %d targets", len(c.Data), len(m.targets))
	}
	var total pipeline.Committed
	total.Version = -1
	for i, t := range m.targets {
		m.mu.Lock()
		skip, readVersion := m.holds(i, c.Txns), m.pos[i].ReadVersion
		m.mu.Unlock()
		if skip {
			continue
		}
		res, err := t.Commit(ctx, Write{ReadVersion: readVersion, ReadAppIDs: c.ReadAppIDs, Txns: c.Txns,
			Files: c.Data[i].Files, Rows: c.Data[i].Rows, Params: c.Data[i].Params})
		if err != nil {
			return pipeline.Committed{}, err
		}
		m.mu.Lock()
		m.pos[i].ReadVersion = res.Version
		if m.pos[i].Versions == nil {
			m.pos[i].Versions = map[string]int64{}
		}
		for _, x := range c.Txns {
			m.pos[i].Versions[x.AppID] = x.Version
		}
		m.mu.Unlock()
		total.Version = res.Version
		total.Files += res.Files
		total.Bytes += res.Bytes
	}
	if total.Version < 0 && len(m.pos) > 0 {
		m.mu.Lock()
		total.Version = m.pos[len(m.pos)-1].ReadVersion // every target held the batch
		m.mu.Unlock()
	}
	return total, nil
}

// holds reports whether target i's positions are at or past every txn;
// m.mu is held.
func (m *Multi) holds(i int, txns []pipeline.Txn) bool {
	for _, x := range txns {
		if v, ok := m.pos[i].Versions[x.AppID]; !ok || v < x.Version {
			return false
		}
	}
	return len(txns) > 0
}
