// Command plantlake-sim is a plant's sensors in one program: it publishes
// realistic readings over MQTT, with duplicates, late readings and broken
// payloads at chosen shares, and writes a ledger of what it published.
// `plantlake-sim status` prints the pipeline's state, one line per hop;
// `plantlake-sim chaos` runs the whole stack through kills and restarts and
// checks that nothing was lost or doubled.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "plantlake-sim:", err)
		os.Exit(1)
	}
}

// run dispatches to the subcommand named by args[0]; publishing is the default.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "status" {
		return runStatus(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "chaos" {
		return runChaos(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "publish" {
		args = args[1:]
	}
	return runPublish(ctx, args, stdout, stderr)
}
