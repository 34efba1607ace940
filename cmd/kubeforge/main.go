// Command kubeforge builds and runs Kubernetes clusters on your own Linux
// machines: every component a systemd service, installed over SSH from one
// bundle built from upstream source.
package main

import (
	"os"

	"github.com/kubeforge/kubeforge/cmd/kubeforge/app"
)

func main() {
	os.Exit(app.Main(os.Args[1:], app.StdIO()))
}
