package app

import (
	"sync/atomic"
	"time"

	"github.com/plantlake/plantlake/pipeline"
	"github.com/plantlake/plantlake/pipeline/tablesource"
	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
	"github.com/plantlake/plantlake/servicekit/pipelinesvc"

	"github.com/plantlake/plantlake/services/merge/internal/gold"
	"github.com/plantlake/plantlake/services/merge/internal/goldsink"
	"github.com/plantlake/plantlake/services/merge/internal/mergeplan"
)

// control is merge's side of the PipelineService: the runner's controls
// and a status with MergeStatus as detail.
type control struct {
	*pipeline.Runner[*mergeplan.Data]
	src     *tablesource.Source
	started time.Time
	sink    atomic.Pointer[goldsink.Sink] // nil until gold is open
}

var _ pipelinesvc.Controller = (*control)(nil)

func (c *control) setSink(s *goldsink.Sink) { c.sink.Store(s) }

// Status reports the runner's state, bronze's position and what the merges did.
func (c *control) Status() *pipelinev1.Status {
	st := c.Runner.Status()
	out := st.Proto(serviceName, pipeline.Position(gold.Name, st.ReadVersion), c.started)
	src := c.src.Status()
	detail := &pipelinev1.MergeStatus{BronzeVersion: src.Position, BronzeLatestVersion: src.Latest}
	if s := c.sink.Load(); s != nil {
		n := s.Counts()
		detail.RowsInserted, detail.RowsUpdated, detail.Duplicates = n.Inserted, n.Updated, n.Duplicates
	}
	out.Detail = &pipelinev1.Status_Merge{Merge: detail}
	return out
}
