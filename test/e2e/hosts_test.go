//go:build e2e

package e2e

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

// snapshot lists what kubeforge could have written on a host.
func snapshot(t *testing.T, host string) string {
	t.Helper()
	return onHost(t, host, "find /opt/kubeforge /var/lib/kubeforge /etc/kubernetes /etc/systemd/system /usr/local/bin /opt/cni /etc/containerd -xdev 2>/dev/null | sort | xargs -r ls -ld --time-style=+%s 2>/dev/null | md5sum; ls /tmp | grep -c kubeforge || true")
}

// TestHosts is the SSH, runner and lab acceptance (three hosts).
func TestHosts(t *testing.T) {
	names := hostNames()
	if len(names) < 3 {
		t.Fatalf("need a lab of 3 hosts, have %v (make lab-up N=3)", names)
	}
	names = names[:3]
	cluster := clusterFile(t, "hosts", names, "", nil)
	state := t.TempDir()
	ctx := context.Background()
	for _, n := range names { // fresh hosts, so the test can run again on the same lab
		if err := theLab.Recreate(ctx, n); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("config errors name the field", func(t *testing.T) {
		for what, edit := range map[string]func(string) string{
			"spec.hosts[0].adress: unknown field": func(s string) string { return strings.Replace(s, "address:", "adress:", 1) },
			"spec.networking.podCIDR":             func(s string) string { return s + "  networking:\n    podCIDR: 172.30.0.0/16\n" },
			"is already the address of spec.hosts[0]": func(s string) string {
				return regexp.MustCompile(`(?s)(address: (\S+).*?address: )\S+`).ReplaceAllString(s, "${1}${2}")
			},
		} {
			r := run(t, nil, "check", "-f", clusterFile(t, "bad", names, "", edit), "--state-dir", state)
			if r.code != 3 || !strings.Contains(r.err, what) {
				t.Errorf("%s: %s", what, r)
			}
		}
	})

	t.Run("dry run changes nothing", func(t *testing.T) {
		before := map[string]string{}
		for _, n := range names {
			before[n] = snapshot(t, n)
		}
		r := mustRun(t, nil, "bundle", "upload", "-f", cluster, "--state-dir", state, "--dry-run")
		if !strings.Contains(r.out, "would change:") || !strings.Contains(r.out, "stream kubeforge-bundle") {
			t.Errorf("dry run printed no plan: %s", r)
		}
		r = mustRun(t, nil, "init", "-f", cluster, "--state-dir", t.TempDir(), "--dry-run")
		if !strings.Contains(r.out, "[etcd]") || !strings.Contains(r.out, "write /etc/systemd/system/etcd.service") {
			t.Errorf("init dry run printed no plan: %s", r)
		}
		for _, n := range names {
			if after := snapshot(t, n); after != before[n] {
				t.Errorf("%s changed during dry runs: %s -> %s", n, before[n], after)
			}
		}
	})

	t.Run("check gathers facts on all hosts", func(t *testing.T) {
		r := mustRun(t, nil, "check", "-f", cluster, "--state-dir", state)
		for _, n := range names {
			if !regexp.MustCompile(`(?m)^` + n + `\s+\S+\s+Debian GNU/Linux 12.*x86_64.*systemd\s+v[12]\s+[0-9.]+ GiB`).MatchString(r.out) {
				t.Errorf("no facts row for %s:\n%s", n, r.out)
			}
		}
		if fresh := mustRun(t, nil, "check", "-f", cluster, "--state-dir", t.TempDir()); strings.Count(fresh.out, "new SSH host key SHA256:") != 3 {
			t.Errorf("first contact did not report the host keys:\n%s", fresh.out)
		}
	})

	t.Run("a stopped host fails alone", func(t *testing.T) {
		if err := theLab.Stop(ctx, names[1]); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := theLab.Start(ctx, names[1]); err != nil {
				t.Fatal(err)
			}
		}()
		r := run(t, nil, "check", "-f", cluster, "--state-dir", state)
		if r.code == 0 || !strings.Contains(r.err, "host "+names[1]) || !strings.Contains(r.err, "failed on 1 of 3 hosts") {
			t.Fatalf("%s", r)
		}
		for _, n := range []string{names[0], names[2]} {
			if !regexp.MustCompile(`(?m)^` + n + `\s+\S+\s+Debian`).MatchString(r.out) {
				t.Errorf("%s did not finish:\n%s", n, r.out)
			}
		}
	})

	t.Run("a recreated host is refused until accepted", func(t *testing.T) {
		if err := theLab.Recreate(ctx, names[2]); err != nil {
			t.Fatal(err)
		}
		r := run(t, nil, "check", "-f", cluster, "--state-dir", state)
		m := regexp.MustCompile(`has (SHA256:\S+) \(line \d+\), the host presented (SHA256:\S+)\.`).FindStringSubmatch(r.err)
		if r.code == 0 || m == nil || m[1] == m[2] || !strings.Contains(r.err, "kubeforge known-hosts accept "+names[2]+" --fingerprint "+m[2]) {
			t.Fatalf("changed key not refused with both fingerprints and the accept command: %s", r)
		}
		if r := run(t, nil, "known-hosts", "accept", names[2], "--fingerprint", "SHA256:wrong", "-f", cluster, "--state-dir", state); r.code == 0 {
			t.Fatalf("a wrong fingerprint was accepted: %s", r)
		}
		mustRun(t, nil, "known-hosts", "accept", names[2], "--fingerprint", m[2], "-f", cluster, "--state-dir", state)
		mustRun(t, nil, "check", "-f", cluster, "--state-dir", state)
	})

	t.Run("a sudo user with a password", func(t *testing.T) {
		sudo := clusterFile(t, "sudo", names[:1], "", func(s string) string {
			return strings.Replace(s, "user: root", "user: kf\n    sudoPasswordEnv: KF_SUDO", 1)
		})
		sudoState := t.TempDir()
		r := mustRun(t, []string{"KF_SUDO=kubeforge"}, "check", "-f", sudo, "--state-dir", sudoState)
		if !strings.Contains(r.out, names[0]) {
			t.Fatalf("%s", r)
		}
		r = run(t, []string{"KF_SUDO=wrong"}, "check", "-f", sudo, "--state-dir", sudoState)
		if r.code == 0 || !strings.Contains(r.err, "user kf cannot run commands as root: the sudo password was refused") {
			t.Fatalf("wrong sudo password: %s", r)
		}
		// Files written through sudo land as root with their mode.
		mustRun(t, []string{"KF_SUDO=kubeforge"}, "bundle", "upload", "-f", sudo, "--state-dir", sudoState)
		if got := onHost(t, names[0], "stat -c '%U:%G %a' /opt/kubeforge/current/bin/kube"); strings.TrimSpace(got) != "root:root 755" {
			t.Errorf("bundle through sudo: %s", got)
		}
		if strings.Contains(r.out+r.err, "kubeforge\n") {
			t.Error("the sudo password was printed")
		}
	})

	t.Run("bundle upload skips what is there", func(t *testing.T) {
		first := mustRun(t, nil, "bundle", "upload", "-f", cluster, "--state-dir", state)
		// The archive is streamed into the unpacker, not kept: the
		// unpacked bundle's marker says whether it was sent again.
		stamp := onHost(t, names[1], "stat -c %Y /opt/kubeforge/current/.complete")
		second := mustRun(t, nil, "bundle", "upload", "-f", cluster, "--state-dir", state)
		if again := onHost(t, names[1], "stat -c %Y /opt/kubeforge/current/.complete"); again != stamp {
			t.Errorf("second run unpacked the bundle again")
		}
		if kept := onHost(t, names[1], "ls /var/lib/kubeforge/bundle/"); strings.Contains(kept, ".tar.") {
			t.Errorf("the host keeps an archive: %s", kept)
		}
		t.Logf("bundle upload to 3 hosts: first %s, second %s", first.duration.Round(10*time.Millisecond), second.duration.Round(10*time.Millisecond))
		for _, n := range names {
			if out := onHost(t, n, "/opt/kubeforge/current/bin/kube kubelet --version"); !strings.HasPrefix(out, "Kubernetes "+distKubernetes(t)) {
				t.Errorf("%s: %s", n, out)
			}
		}
	})
}
