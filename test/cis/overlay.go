package cis

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"sigs.k8s.io/yaml"
)

// OverlayFile is kubeforge's kube-bench configuration, relative to the
// repository root.
const OverlayFile = "test/cis/config.yaml"

// Component is what kube-bench's config.yaml says about one component of a
// target: the process names it looks for (the first one running wins) and
// the files it probes (the first candidate that exists, else the default).
type Component struct {
	Optional          bool     `json:"optional"` // kube-bench runs the target's checks without it
	Bins              []string `json:"bins"`
	Confs             []string `json:"confs"`
	DefaultConf       string   `json:"defaultconf"`
	Svc               []string `json:"svc"`
	DefaultSvc        string   `json:"defaultsvc"`
	Kubeconfig        []string `json:"kubeconfig"`
	DefaultKubeconfig string   `json:"defaultkubeconfig"`
	CAFile            []string `json:"cafile"`
	DefaultCAFile     string   `json:"defaultcafile"`
	DataDirs          []string `json:"datadirs"`
	DefaultDataDir    string   `json:"defaultdatadir"`
}

// Paths are every file the component's entry names.
func (c Component) Paths() []string {
	var out []string
	for _, list := range [][]string{c.Confs, {c.DefaultConf}, c.Svc, {c.DefaultSvc}, c.Kubeconfig, {c.DefaultKubeconfig}, c.CAFile, {c.DefaultCAFile}, c.DataDirs, {c.DefaultDataDir}} {
		for _, p := range list {
			if p != "" && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// Overlay is kubeforge's config.yaml for kube-bench: target -> component.
type Overlay map[string]map[string]Component

// ParseOverlay reads the overlay, strictly: a misspelt key would leave
// kube-bench on its stock paths without a word.
func ParseOverlay(data []byte) (Overlay, error) {
	var o Overlay
	if err := yaml.UnmarshalStrict(data, &o); err != nil {
		return nil, fmt.Errorf("%s: %w", OverlayFile, err)
	}
	if len(o) == 0 {
		return nil, fmt.Errorf("%s: no settings", OverlayFile)
	}
	for target, comps := range o {
		for name, c := range comps {
			for _, p := range c.Paths() {
				if !filepath.IsAbs(p) {
					return nil, fmt.Errorf("%s: %s.%s: %q is not an absolute path", OverlayFile, target, name, p)
				}
			}
		}
	}
	return o, nil
}

// Expectation is what a host checked against some targets must have for
// kube-bench's results to be about it: each process (one of the names
// running) and each file.
type Expectation struct {
	Processes [][]string // for each component, the names kube-bench tries
	Paths     []string
}

// Expect lists what the overlay names for those targets, in a stable order.
func (o Overlay) Expect(targets []string) Expectation {
	var e Expectation
	for _, t := range targets {
		comps := o[t]
		names := make([]string, 0, len(comps))
		for n := range comps {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			c := comps[n]
			if len(c.Bins) > 0 && !slices.ContainsFunc(e.Processes, func(b []string) bool { return slices.Equal(b, c.Bins) }) {
				e.Processes = append(e.Processes, c.Bins)
			}
			for _, p := range c.Paths() {
				if !slices.Contains(e.Paths, p) {
					e.Paths = append(e.Paths, p)
				}
			}
		}
	}
	return e
}

// StageConfig writes the configuration kube-bench runs with into dst (its
// --config-dir): upstream's config.yaml and the benchmark's checks from src
// (bin/kube-bench-cfg, the module's cfg/ folder), and the overlay as the
// benchmark's own config.yaml, which kube-bench merges over config.yaml.
// Upstream's benchmark config.yaml holds no settings in v0.15.6; one that
// does would be lost, so StageConfig refuses to replace it.
func StageConfig(src string, overlay []byte, dst string) error {
	if _, err := ParseOverlay(overlay); err != nil {
		return err
	}
	upstream, err := os.ReadFile(filepath.Join(src, Benchmark, "config.yaml"))
	if err != nil {
		return fmt.Errorf("kube-bench's cfg: %w (run make kube-bench)", err)
	}
	var settings map[string]any
	if err := yaml.Unmarshal(upstream, &settings); err != nil {
		return fmt.Errorf("%s/%s/config.yaml: %w", src, Benchmark, err)
	}
	if len(settings) > 0 {
		return fmt.Errorf("%s/%s/config.yaml has settings of its own (%d keys): merge them into %s before it replaces the file", src, Benchmark, len(settings), OverlayFile)
	}
	checks, err := filepath.Glob(filepath.Join(src, Benchmark, "*.yaml"))
	if err != nil {
		return err
	}
	if len(checks) < 2 {
		return fmt.Errorf("%s/%s: no checks", src, Benchmark)
	}
	if err := os.MkdirAll(filepath.Join(dst, Benchmark), 0o755); err != nil {
		return err
	}
	files := map[string][]byte{}
	for _, f := range append(checks, filepath.Join(src, "config.yaml")) {
		rel, err := filepath.Rel(src, f)
		if err != nil {
			return err
		}
		if files[rel], err = os.ReadFile(f); err != nil {
			return err
		}
	}
	files[filepath.Join(Benchmark, "config.yaml")] = overlay
	var errs []error
	for rel, data := range files {
		errs = append(errs, os.WriteFile(filepath.Join(dst, rel), data, 0o644))
	}
	return errors.Join(errs...)
}
