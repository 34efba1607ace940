// Command pause is the pod sandbox process: PID 1 of every pod's
// infrastructure container. It holds the pod's namespaces open, reaps
// orphaned children (which is PID 1's job) and exits cleanly on SIGINT or
// SIGTERM. It does what Kubernetes' C pause does, built statically from this
// repo so the sandbox image needs no registry.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kubeforge/kubeforge/components/pause/version"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-v" || os.Args[1] == "--version") {
		fmt.Println("pause", version.Pause)
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "Warning: pause should be the first process")
	}
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		fmt.Fprintf(os.Stderr, "Shutting down, got signal: %v\n", sig)
		os.Exit(0)
	}
}

// reap collects every exited child without blocking.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
