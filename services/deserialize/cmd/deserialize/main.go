// Command deserialize follows the Delta table raw.plant_sensor_readings and
// writes every reading, exactly once, either to bronze.plant_sensor_readings
// (parsed and valid) or to bronze.plant_sensor_dead_letters (with the reason
// and its bytes), through the catalog.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/plantlake/plantlake/services/deserialize/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := app.Run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "deserialize:", err)
		os.Exit(1)
	}
}
