// Command kubeforge builds and runs Kubernetes clusters on your own Linux
// machines: every component a systemd service, installed over SSH from one
// bundle built from upstream source.
package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/kubeforge/kubeforge/cmd/kubeforge/app"
)

func main() {
	os.Exit(run())
}

// run is main with a CPU profile when KUBEFORGE_CPUPROFILE names a file
// (for make bench and for finding where a command's time goes).
func run() int {
	if p := os.Getenv("KUBEFORGE_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kubeforge: KUBEFORGE_CPUPROFILE:", err)
			return 1
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "kubeforge: KUBEFORGE_CPUPROFILE:", err)
			return 1
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	return app.Main(os.Args[1:], app.StdIO())
}
