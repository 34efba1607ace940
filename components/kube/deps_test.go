package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
)

// allowedDrift lists modules linked into kube at a version other than the
// one k8s.io/kubernetes pins, with the reason. Keep it empty where possible:
// every entry is a dependency Kubernetes was not tested with.
var allowedDrift = map[string]string{}

// TestLinkedWithKubernetesPins guards the multicall binary against the
// kubeforge CLI's own dependencies: one go.mod serves both, and a newer
// library pulled in for the CLI would silently change what the cluster runs.
func TestLinkedWithKubernetesPins(t *testing.T) {
	goMod := goList(t, "list", "-m", "-f", "{{.GoMod}}", "k8s.io/kubernetes")
	data, err := os.ReadFile(goMod)
	if err != nil {
		t.Fatal(err)
	}
	kmod, err := modfile.Parse(goMod, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	pinned := map[string]string{}
	for _, r := range kmod.Require {
		if !strings.HasPrefix(r.Mod.Version, "v0.0.0") { // staging modules: pinned by our replace lines
			pinned[r.Mod.Path] = r.Mod.Version
		}
	}

	linked := map[string]string{}
	out := goList(t, "list", "-deps", "-json=Module", ".")
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var p struct {
			Module *struct {
				Path    string
				Version string
				Replace *struct{ Version string }
			}
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || p.Module.Version == "" {
			continue
		}
		v := p.Module.Version
		if p.Module.Replace != nil {
			v = p.Module.Replace.Version
		}
		linked[p.Module.Path] = v
	}
	if len(linked) < 50 {
		t.Fatalf("go list found only %d modules in kube", len(linked))
	}
	for path, want := range pinned {
		got, ok := linked[path]
		if !ok || got == want {
			continue
		}
		if reason, ok := allowedDrift[path]; ok {
			t.Logf("%s: %s instead of %s: %s", path, got, want, reason)
			continue
		}
		t.Errorf("%s is linked at %s, Kubernetes %s pins %s: pin it back in go.mod (go get %s@%s)",
			path, got, linked["k8s.io/kubernetes"], want, path, want)
	}
	for _, staging := range []string{"k8s.io/api", "k8s.io/client-go", "k8s.io/apiserver", "k8s.io/kubelet"} {
		if got, want := linked[staging], "v0"+strings.TrimPrefix(linked["k8s.io/kubernetes"], "v1"); got != want {
			t.Errorf("%s is %s, want %s (replace lines in go.mod)", staging, got, want)
		}
	}
	if api, server := linked["go.etcd.io/etcd/api/v3"], linked["go.etcd.io/etcd/server/v3"]; api != server {
		t.Errorf("etcd server %s but the client Kubernetes uses is %s: keep them equal", server, api)
	}
}

func goList(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}
