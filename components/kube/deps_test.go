package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// allowedDrift lists modules linked into kube at a version other than the
// one k8s.io/kubernetes (or, where it asks for more, etcd) pins, with the
// reason. Keep it empty where possible: every entry is a dependency neither
// project was tested with.
var allowedDrift = map[string]string{
	// Raised by what etcd's own dependencies require (x/crypto and x/net
	// ask for newer x/term, x/sync and x/tools; grpc-gateway and
	// prometheus for x/oauth2; cel-go for cel.dev/expr): one build list
	// holds the API server and etcd.
	"golang.org/x/term":   "required by the golang.org/x/crypto and x/net etcd links",
	"golang.org/x/sync":   "required by the golang.org/x/net etcd links",
	"golang.org/x/tools":  "required by golang.org/x/net and x/mod through etcd's dependencies",
	"golang.org/x/oauth2": "required by grpc-gateway and prometheus at the versions etcd links",
	"cel.dev/expr":        "required by the cel-go at the version etcd's dependencies raise",
}

// TestLinkedWithUpstreamPins holds the multicall binary to its upstreams:
// every module is linked at the version Kubernetes pins, or at the higher one
// the etcd release beside it requires (the one build list holds both). Run it
// for each minor's module file, go.mod (the default) and k8s-*.mod: go list
// reads them without building anything.
func TestLinkedWithUpstreamPins(t *testing.T) {
	modfiles, err := filepath.Glob("k8s-*.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append([]string{"go.mod"}, modfiles...) {
		t.Run(f, func(t *testing.T) { checkPins(t, "-modfile="+f) })
	}
}

func checkPins(t *testing.T, modfileFlag string) {
	pinned, by := map[string]string{}, map[string]string{}
	for _, mod := range []string{"k8s.io/kubernetes", "go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/etcdctl/v3", "go.etcd.io/etcd/etcdutl/v3"} {
		goMod := goList(t, "list", modfileFlag, "-m", "-f", "{{.GoMod}}", mod)
		// go mod edit reads the file: no module of the test's own (such
		// as golang.org/x/mod) joins the build list it checks.
		var f struct {
			Require []struct{ Path, Version string }
		}
		if err := json.Unmarshal([]byte(goList(t, "mod", "edit", "-json", goMod)), &f); err != nil {
			t.Fatal(err)
		}
		for _, r := range f.Require {
			v := r.Version
			if strings.HasPrefix(v, "v0.0.0") && strings.HasPrefix(r.Path, "k8s.io/") {
				continue // staging modules: pinned by the replace lines
			}
			if old, ok := pinned[r.Path]; !ok || newer(v, old) {
				pinned[r.Path], by[r.Path] = v, mod
			}
		}
	}

	linked := map[string]string{}
	out := goList(t, "list", modfileFlag, "-deps", "-json=Module", ".")
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
		t.Errorf("%s is linked at %s, %s (with Kubernetes %s) pins %s: pin it back in the module file (go get %s@%s)",
			path, got, by[path], linked["k8s.io/kubernetes"], want, path, want)
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

// newer compares module versions: vMAJOR.MINOR.PATCH numerically, then the
// rest (pseudo-versions and pre-releases) as text.
func newer(a, b string) bool {
	num := func(v string) (out [3]int, rest string) {
		core, rest, _ := strings.Cut(strings.TrimPrefix(v, "v"), "-")
		core, plus, _ := strings.Cut(core, "+")
		for i, p := range strings.SplitN(core, ".", 3) {
			out[i], _ = strconv.Atoi(p)
		}
		return out, rest + plus
	}
	na, ra := num(a)
	nb, rb := num(b)
	for i := range na {
		if na[i] != nb[i] {
			return na[i] > nb[i]
		}
	}
	return ra > rb
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
