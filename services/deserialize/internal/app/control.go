package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/plantlake/plantlake/pipeline"
	"github.com/plantlake/plantlake/pipeline/tablesink"
	"github.com/plantlake/plantlake/pipeline/tablesource"
	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
	"github.com/plantlake/plantlake/servicekit/pipelinesvc"

	"github.com/plantlake/plantlake/services/deserialize/internal/deserializer"
	"github.com/plantlake/plantlake/services/deserialize/internal/reprocess"
	"github.com/plantlake/plantlake/services/deserialize/internal/rules"
)

// control is deserialize's side of the PipelineService: the runner's
// controls, a status with the raw position and the rule counts, and the
// rules reload.
type control struct {
	*pipeline.Runner[[]tablesink.Output]
	src       *tablesource.Source
	rows      *deserializer.Rows
	rulesFile string
	started   time.Time
	log       *slog.Logger

	// reprocessor replaces ranges of raw versions; it runs on the runner's
	// goroutine only (Runner.Exclusive).
	reprocessor *reprocess.Reprocessor
	// latest is the rules set last loaded: the one a reprocess derives
	// with, even before the batch that a reload waits for has closed.
	latest atomic.Pointer[rules.Set]
	// reprocessing is the reprocess in progress, for the status.
	reprocessing atomic.Pointer[pipelinev1.ReprocessProgress]
}

var _ pipelinesvc.Controller = (*control)(nil)

// Status reports the runner's state, the raw position and every rule's counts.
func (c *control) Status() *pipelinev1.Status {
	st := c.Runner.Status()
	pos := c.src.Status()
	out := st.Proto(serviceName, pipeline.Position(deserializer.Tables[deserializer.Readings].Name, st.ReadVersion)+
		fmt.Sprintf(" (raw@v%d)", pos.Position), c.started)
	tot := c.rows.Totals()
	set := c.rows.Rules()
	detail := &pipelinev1.DeserializeStatus{
		RawVersion:       pos.Position,
		RawLatestVersion: pos.Latest,
		RowsValid:        tot.Valid,
		RowsDeadLettered: tot.DeadLettered,
		RulesGeneration:  int64(set.Generation()),
		Reprocess:        c.reprocessing.Load(),
	}
	for _, r := range c.rows.RuleTotals() {
		detail.Rules = append(detail.Rules, &pipelinev1.RuleCount{Name: r.Name, Action: string(r.Action), Passed: r.Passed, Failed: r.Failed})
		if r.Action == rules.Warn {
			detail.Warnings += r.Failed
		}
	}
	out.Detail = &pipelinev1.Status_Deserialize{Deserialize: detail}
	return out
}

// reload reads the rules file again and makes it the rules of the next
// batch; a file that does not load leaves the rules in force.
func (c *control) reload() (*rules.Set, error) {
	set, err := loadRules(c.rulesFile)
	if err != nil {
		return nil, err
	}
	c.rows.Reload(set)
	c.latest.Store(set)
	c.log.Info("rules reloaded; in force from the next batch", "file", c.rulesFile, "generation", set.Generation(), "digest", set.Digest())
	return set, nil
}

// server adds deserialize's own calls to the kit's PipelineService.
type server struct {
	*pipelinesvc.Server
	ctl *control
}

// ReloadRules reads the rules file again.
func (s *server) ReloadRules(context.Context, *pipelinev1.ReloadRulesRequest) (*pipelinev1.ReloadRulesResponse, error) {
	set, err := s.ctl.reload()
	if err != nil {
		return nil, pipelinesvc.Status("reload rules", fmt.Errorf("%w: %w", pipelinesvc.ErrInvalid, err))
	}
	resp := &pipelinev1.ReloadRulesResponse{RulesGeneration: int64(set.Generation())}
	for _, r := range set.Snapshot() {
		resp.Rules = append(resp.Rules, r.Name)
	}
	return resp, nil
}

// reprocess derives raw versions from..to again with the rules last loaded
// and replaces their rows in dead letters and bronze. It runs on the
// runner's goroutine between two commits (Runner.Exclusive): the follower
// takes no input meanwhile, and the batch it was building is committed
// afterwards. The range must be within what both tables hold, which the
// reprocessor checks against their txns once no commit is in flight.
func (c *control) reprocess(ctx context.Context, from, to int64) (reprocess.Result, error) {
	var res reprocess.Result
	err := c.Runner.Exclusive(ctx, func(ctx context.Context) error {
		c.reprocessing.Store(&pipelinev1.ReprocessProgress{FromRawVersion: from, ToRawVersion: to, StartTime: timestamppb.Now()})
		defer c.reprocessing.Store(nil)
		var err error
		res, err = c.reprocessor.Run(ctx, from, to, c.latest.Load())
		return err
	})
	return res, err
}

// Reprocess derives a range of raw versions again with the current rules
// and replaces its rows in dead letters, then in bronze.
func (s *server) Reprocess(ctx context.Context, req *pipelinev1.ReprocessRequest) (*pipelinev1.ReprocessResponse, error) {
	res, err := s.ctl.reprocess(ctx, req.GetFromRawVersion(), req.GetToRawVersion())
	if err != nil {
		return nil, reprocessStatus(err)
	}
	return &pipelinev1.ReprocessResponse{
		RowsValid:               res.Valid,
		RowsDeadLettered:        res.DeadLettered,
		RowsRemovedValid:        res.RemovedValid,
		RowsRemovedDeadLettered: res.RemovedDeadLettered,
		DeadLettersVersion:      res.DeadLettersVersion,
		BronzeVersion:           res.BronzeVersion,
	}, nil
}

// reprocessStatus maps a reprocess error to a gRPC status: a range outside
// the derived versions is InvalidArgument; a raw version whose files are
// gone, or a fail rule, is FailedPrecondition; the rest as every control
// call's (pipelinesvc.Status).
func reprocessStatus(err error) error {
	switch {
	case errors.Is(err, reprocess.ErrRange):
		err = fmt.Errorf("%w: %w", pipelinesvc.ErrInvalid, err)
	case errors.Is(err, reprocess.ErrFilesGone), errors.Is(err, reprocess.ErrFailRule):
		return status.Errorf(codes.FailedPrecondition, "reprocess: %v", err)
	}
	return pipelinesvc.Status("reprocess", err)
}

// newMetrics registers the per-rule counters, read from the rules' counts
// when scraped.
func newMetrics(reg prometheus.Registerer, rows *deserializer.Rows) {
	if reg == nil {
		return
	}
	reg.MustRegister(ruleCollector{rows: rows, desc: prometheus.NewDesc("plantlake_deserialize_rule_rows_total",
		"Rows each validation rule checked, by outcome (passed, failed) and the rule's action.",
		[]string{"rule", "action", "outcome"}, nil)})
}

// ruleCollector exposes the rules' counts as counters.
type ruleCollector struct {
	rows *deserializer.Rows
	desc *prometheus.Desc
}

func (c ruleCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c ruleCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.rows.RuleTotals() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(r.Passed), r.Name, string(r.Action), "passed")
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(r.Failed), r.Name, string(r.Action), "failed")
	}
}
