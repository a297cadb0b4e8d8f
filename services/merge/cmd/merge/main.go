// Command merge follows bronze.plant_sensor_readings and merges every new
// version into gold.plant_sensor_readings, each (sensor_id, measurement, ts)
// once, with the bronze position stored in gold's commits.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/plantlake/plantlake/services/merge/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := app.Run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "merge:", err)
		os.Exit(1)
	}
}
