package pipeline

import (
	"context"
	"fmt"

	"github.com/plantlake/plantlake/servicekit/pipelinesvc"
)

// control is a call from another goroutine, run by the Run goroutine
// between two polls.
type control struct {
	f     func() error
	reply chan error
}

func (c control) run() { c.reply <- c.f() }

// do runs f on the Run goroutine and waits for its result.
func (r *Runner[D]) do(ctx context.Context, f func() error) error {
	c := control{f: f, reply: make(chan error, 1)}
	select {
	case r.controls <- c:
	case <-r.done:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-c.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Pause stops the source taking input until Resume. The batch being built
// is still committed when it reaches its age.
func (r *Runner[D]) Pause(ctx context.Context) error {
	return r.do(ctx, func() error {
		if err := r.src.Pause(); err != nil {
			return err
		}
		r.paused = true
		r.log.Info("paused")
		r.refreshStatus()
		return nil
	})
}

// Resume undoes Pause, and ends a halt: the positions are read again and
// the source reads from there, with whatever was fixed meanwhile (a rules
// reload).
func (r *Runner[D]) Resume(ctx context.Context) error {
	return r.do(ctx, func() error {
		if err := r.src.Resume(); err != nil {
			return err
		}
		if r.halted != nil {
			r.log.Info("resuming after a halt", "halted_by", r.halted)
			r.halted = nil
			r.setState(StateRunning)
			if err := r.reposition(r.runCtx); err != nil {
				return err
			}
		}
		r.paused = false
		r.log.Info("resumed")
		r.refreshStatus()
		return nil
	})
}

// TriggerCommit finishes the commit in flight, closes the batch now and
// commits it. It returns the table version the runner is at afterwards and
// the rows the two commits carried (zero when there was nothing to commit),
// or the commit's error, after which the runner has read its positions
// again.
func (r *Runner[D]) TriggerCommit(ctx context.Context) (pipelinesvc.Committed, error) {
	var t triggered
	err := r.do(ctx, func() error {
		if r.halted != nil {
			return fmt.Errorf("%w: %w", ErrHalted, r.halted)
		}
		var err error
		t, err = r.ackOrReposition(r.runCtx, "trigger")
		return err
	})
	if err != nil {
		return pipelinesvc.Committed{}, err
	}
	return pipelinesvc.Committed{Version: t.version, Rows: t.rows}, nil
}

// Exclusive runs f on the Run goroutine once the commit in flight, if any,
// is finished, and returns f's error: no commit of the runner runs while f
// does, and none is in flight when it starts (a job that rewrites the
// targets' files, such as deserialize's Reprocess). The batch being built is
// kept as it is, neither committed nor dropped: it holds only source
// positions after the targets' txns, and is committed after f returns as
// if f had not run. f's commits must therefore leave the runner's
// positions alone (their own txn app ids, if any) and must not conflict
// with a blind append. If the commit in flight fails, f does not run: the
// runner reads its positions again and the commit's error is returned. The
// runner takes no input while f runs; ctx is the caller's, and f should
// honour it.
func (r *Runner[D]) Exclusive(ctx context.Context, f func(ctx context.Context) error) error {
	return r.do(ctx, func() error {
		if _, err := r.await(); err != nil {
			if rerr := r.reposition(r.runCtx); rerr != nil {
				r.fatal = rerr
			}
			r.refreshStatus()
			return fmt.Errorf("the commit in flight before an exclusive call: %w", err)
		}
		r.refreshStatus()
		return f(ctx)
	})
}
