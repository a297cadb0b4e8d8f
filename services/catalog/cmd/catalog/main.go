// Command catalog serves plantlake's catalog: the one writer of every Delta
// table's log in a warehouse, over gRPC (see DESIGN.md section 4).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/plantlake/plantlake/services/catalog/internal/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "catalog:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := service.ParseConfig(os.Args[1:])
	if err != nil {
		return err
	}
	return service.Run(ctx, cfg, service.Options{})
}
