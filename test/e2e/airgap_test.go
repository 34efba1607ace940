//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The air-gapped acceptance (make e2e-airgap: 5 lab hosts, 3 control
// planes, AIRGAP=1, so the hosts reach nothing outside the lab, no mirror
// and no DNS): a host without iptables is refused in preflight, naming the
// host and the package, before any host is changed; then, with iptables
// back, init of 3 control planes and 2 workers behind the VIP installs no
// OS package anywhere, every node runs the bundle's containerd 2.x and
// answers crictl, and the VIP moves within 5 s when its holder stops.
const airgapEnv = "KUBEFORGE_E2E_AIRGAP"

func TestAirgap(t *testing.T) {
	if os.Getenv(airgapEnv) != "1" {
		t.Skipf("the air-gapped acceptance needs 5 air-gapped lab hosts: run it with make e2e-airgap (%s=1)", airgapEnv)
	}
	names := hostNames()
	if len(names) < 5 || !theLab.Airgap {
		t.Fatalf("need 5 air-gapped lab hosts (make lab-up N=5 CP=3 AIRGAP=1), have %v (air-gapped: %v)", names, theLab.Airgap)
	}
	ctx := context.Background()
	for _, n := range names[:5] {
		if err := theLab.Recreate(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	cps := names[:3]
	cluster := haCluster(t, "airgap", names[:5])
	state := filepath.Join(t.TempDir(), "state")
	k := kube{file: cluster, state: state}

	t.Run("a host without iptables: refused in preflight, no host changed", func(t *testing.T) {
		victim := names[4]
		before := map[string]string{}
		for _, n := range names[:5] {
			before[n] = listing(t, n)
		}
		hidden := strings.TrimSpace(onHost(t, victim, `p=$(command -v iptables) && mv "$p" "$p.e2e-hidden" && echo "$p"`))
		defer onHost(t, victim, "mv "+hidden+".e2e-hidden "+hidden)
		r := run(t, nil, "init", "-f", cluster, "--state-dir", state)
		if r.code == 0 {
			t.Fatalf("init went ahead on a host without iptables:\n%s", r)
		}
		for _, want := range []string{victim, "[Packages]", "iptables (package iptables)", "reaches no package mirror"} {
			if !strings.Contains(r.err, want) {
				t.Errorf("the refusal does not say %q:\n%s", want, r.err)
			}
		}
		if strings.Contains(r.out, "[bundle]") {
			t.Errorf("init went past preflight:\n%s", r.out)
		}
		for _, n := range names[:5] {
			if after := listing(t, n); after != before[n] {
				t.Errorf("%s was changed by the refused init", n)
			}
		}
		t.Logf("refused (exit %d): %s", r.code, lastLine(r.err))
	})

	r := mustRun(t, nil, "init", "-f", cluster, "--state-dir", state)
	t.Logf("air-gapped init of 3 control planes + 2 workers: %s", doneLine(r.out))

	t.Run("five nodes Ready on the bundle's containerd, crictl on each, no OS package installed", func(t *testing.T) {
		ready := readyNodes(t, k)
		for _, n := range names[:5] {
			if ready[n] != "True" {
				t.Errorf("%s not Ready: %v", n, ready)
			}
			noPackagesInstalled(t, n)
		}
		bundledRuntime(t, k, names[:5])
		t.Logf("nodes:\n%s", k.must(t, "get", "nodes", "-o", "wide"))
	})

	t.Run("the VIP holder stops: another holds it within 5 s", func(t *testing.T) {
		holders := vipHolders(cps)
		if len(holders) != 1 {
			t.Fatalf("VIP holders before: %v", holders)
		}
		victim := holders[0]
		others := slices.DeleteFunc(slices.Clone(cps), func(s string) bool { return s == victim })
		start := time.Now()
		var wg sync.WaitGroup
		var stopErr error
		wg.Add(1)
		go func() { defer wg.Done(); stopErr = theLab.Stop(ctx, victim) }()
		var moved time.Duration
		for moved == 0 && time.Since(start) < time.Minute {
			if len(vipHolders(others)) == 1 {
				moved = time.Since(start)
			}
			time.Sleep(100 * time.Millisecond)
		}
		wg.Wait()
		if stopErr != nil {
			t.Fatal(stopErr)
		}
		switch {
		case moved == 0:
			t.Errorf("no other control plane held the VIP a minute after %s stopped", victim)
		case moved > 5*time.Second:
			t.Errorf("the VIP moved after %s, want within 5s", moved.Round(100*time.Millisecond))
		default:
			t.Logf("stopped %s: another control plane held the VIP %s after the stop began", victim, moved.Round(100*time.Millisecond))
		}
		eventually(t, time.Minute, "the API through the VIP", func() string {
			if _, err := k.run("", "get", "nodes", "--request-timeout=2s"); err != nil {
				return err.Error()
			}
			return ""
		})
		if err := theLab.Start(ctx, victim); err != nil {
			t.Fatal(err)
		}
	})
}
