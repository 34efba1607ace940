//go:build e2e

package lab

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Run against a running lab with at least two hosts:
//
//	make lab-up N=2 && go test -tags e2e -count=1 -v ./test/lab/
//
// It stops, starts and re-creates lab2.

func hostKey(t *testing.T, ip string) string {
	t.Helper()
	out, err := exec.Command("ssh-keyscan", "-T", "5", "-t", "ed25519", ip).Output()
	if err != nil || len(out) == 0 {
		t.Fatalf("ssh-keyscan %s: %v", ip, err)
	}
	f := strings.Fields(string(out))
	return f[len(f)-1]
}

func TestHostLifecycle(t *testing.T) {
	l, err := Load("../..")
	if err != nil {
		t.Fatal(err)
	}
	h, err := l.Host("lab2")
	if err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	out, err := l.Exec(ctx, h.Name, "hostname")
	if err != nil || strings.TrimSpace(out) != h.Name {
		t.Fatalf("Exec hostname = %q, %v", out, err)
	}
	before := hostKey(t, h.IP)

	start := time.Now()
	if err := l.Stop(ctx, h.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Exec(ctx, h.Name, "true"); err == nil {
		t.Error("Exec in a stopped host succeeded")
	}
	if err := l.Start(ctx, h.Name); err != nil {
		t.Fatal(err)
	}
	if k := hostKey(t, h.IP); k != before {
		t.Errorf("host key changed across Stop/Start: %s -> %s", before, k)
	}
	t.Logf("Stop+Start: %.1fs", time.Since(start).Seconds())

	start = time.Now()
	if err := l.Recreate(ctx, h.Name); err != nil {
		t.Fatal(err)
	}
	after := hostKey(t, h.IP)
	t.Logf("Recreate: %.1fs; host key %s -> %s", time.Since(start).Seconds(), before, after)
	if after == before {
		t.Errorf("Recreate kept the host key %s", before)
	}
	if out, err := l.Exec(ctx, h.Name, "systemctl", "is-system-running"); err != nil {
		t.Errorf("after Recreate: is-system-running = %q, %v", out, err)
	}
}
