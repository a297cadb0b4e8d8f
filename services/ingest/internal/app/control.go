package app

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/plantlake/plantlake/pipeline"
	"github.com/plantlake/plantlake/pipeline/kafkasource"
	"github.com/plantlake/plantlake/pipeline/tablesink"
	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
	"github.com/plantlake/plantlake/servicekit/pipelinesvc"

	"github.com/plantlake/plantlake/services/ingest/internal/rawtable"
)

// control is ingest's side of the PipelineService: the runner's controls
// and a status with the Kafka partitions as detail.
type control struct {
	*pipeline.Runner[[]tablesink.File]
	src     *kafkasource.Source
	started time.Time
}

var _ pipelinesvc.Controller = control{}

// Status reports the runner's state and every assigned partition.
func (c control) Status() *pipelinev1.Status {
	st := c.Runner.Status()
	out := st.Proto(serviceName, pipeline.Position(rawtable.Name, st.ReadVersion), c.started)
	detail := &pipelinev1.IngestStatus{Table: rawtable.Name, BufferedRows: int64(st.BatchRows)}
	if st.LastCommit.Version >= 0 {
		detail.LastCommitVersion = st.LastCommit.Version
		detail.LastCommitTime = timestamppb.New(st.LastCommit.Time)
	}
	for _, p := range c.src.Partitions() {
		detail.Partitions = append(detail.Partitions, &pipelinev1.PartitionStatus{
			Topic:           p.Topic,
			Partition:       p.Partition,
			OffsetInTable:   p.OffsetInTable,
			EndOffset:       p.EndOffset,
			Lag:             p.Lag,
			RowsLastCommit:  int64(p.LastCommitRows),
			FilesLastCommit: int64(p.LastCommitFiles),
		})
	}
	out.Detail = &pipelinev1.Status_Ingest{Ingest: detail}
	return out
}
