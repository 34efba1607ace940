// Package cis reads what the CIS Kubernetes Benchmark runner (aquasecurity's
// kube-bench, built by `make kube-bench` from test/cis/kube-bench) reports,
// and holds kubeforge's configuration for it (config.yaml in this directory:
// where kubeforge puts each file kube-bench probes). TestCIS (test/e2e) runs
// kube-bench on every lab host with it; this package is what needs no lab.
package cis

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Benchmark is the CIS benchmark kube-bench runs: its version mapping stops
// at Kubernetes 1.34, which maps to cis-1.12, also the one for 1.35.
const Benchmark = "cis-1.12"

// Targets are the benchmark's sections (the files of cfg/cis-1.12) a host
// is checked against: a control plane runs the API server, the controllers
// and an etcd member, and is a node too; policies are checked where the
// cluster's admin credential is. A worker is a node.
var (
	ControlPlaneTargets = []string{"master", "controlplane", "etcd", "node", "policies"}
	WorkerTargets       = []string{"node"}
)

// State is a check's result.
type State string

const (
	Pass State = "PASS"
	Fail State = "FAIL" // a scored check whose test failed (or could not run)
	Warn State = "WARN" // a manual check, or an unscored one that failed
	Info State = "INFO" // a skipped check
)

// Report is kube-bench's --json output with its totals: check.OverallControls
// in kube-bench's source (check/controls.go), whose fields have no JSON tags.
type Report struct {
	Controls []Controls `json:"Controls"`
	Totals   Summary    `json:"Totals"`
}

// Controls is one target's results (check.Controls).
type Controls struct {
	ID       string  `json:"id"` // 1 for master, 4 for node...
	Version  string  `json:"version"`
	Text     string  `json:"text"`
	NodeType string  `json:"node_type"` // the target: master, node, ...
	Groups   []Group `json:"tests"`
	Summary
}

// Group is a section of checks, such as 1.1 (check.Group).
type Group struct {
	ID     string  `json:"section"`
	Text   string  `json:"desc"`
	Checks []Check `json:"results"`
}

// Check is one recommendation's result (check.Check).
type Check struct {
	ID             string `json:"test_number"` // 1.1.1
	Text           string `json:"test_desc"`
	Audit          string `json:"audit"`
	Type           string `json:"type"` // "", manual or skip
	State          State  `json:"status"`
	Scored         bool   `json:"scored"`
	ActualValue    string `json:"actual_value"`
	ExpectedResult string `json:"expected_result"`
	Reason         string `json:"reason"` // why the audit did not run, when it did not
	Remediation    string `json:"remediation"`
}

// Summary counts results (check.Summary).
type Summary struct {
	Pass int `json:"total_pass"`
	Fail int `json:"total_fail"`
	Warn int `json:"total_warn"`
	Info int `json:"total_info"`
}

func (s Summary) add(o Summary) Summary {
	return Summary{Pass: s.Pass + o.Pass, Fail: s.Fail + o.Fail, Warn: s.Warn + o.Warn, Info: s.Info + o.Info}
}

// Checks is how many checks the summary counts.
func (s Summary) Checks() int { return s.Pass + s.Fail + s.Warn + s.Info }

// Parse reads kube-bench's --json output (run without --nototals). It
// recounts every check and refuses output whose counts disagree with the
// totals kube-bench wrote, or with a state it does not know: a change of
// format must not read as zero failures.
func Parse(data []byte) (*Report, error) {
	var r Report
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("kube-bench JSON: %w", err)
	}
	if len(r.Controls) == 0 {
		return nil, errors.New("kube-bench JSON: no controls (was it run with --nototals, or with no target?)")
	}
	var sum Summary
	for _, c := range r.Controls {
		got, err := c.count()
		if err != nil {
			return nil, err
		}
		if got != c.Summary {
			return nil, fmt.Errorf("kube-bench JSON: %s (%s): the checks count %+v, its totals say %+v", c.ID, c.NodeType, got, c.Summary)
		}
		sum = sum.add(got)
	}
	if sum != r.Totals {
		return nil, fmt.Errorf("kube-bench JSON: the checks count %+v, the totals say %+v", sum, r.Totals)
	}
	return &r, nil
}

func (c Controls) count() (Summary, error) {
	var s Summary
	for _, g := range c.Groups {
		for _, ch := range g.Checks {
			switch ch.State {
			case Pass:
				s.Pass++
			case Fail:
				s.Fail++
			case Warn:
				s.Warn++
			case Info:
				s.Info++
			default:
				return s, fmt.Errorf("kube-bench JSON: check %s has state %q", ch.ID, ch.State)
			}
		}
	}
	return s, nil
}

// Targets are the node types the report holds results for, in its order.
func (r *Report) Targets() []string {
	var out []string
	for _, c := range r.Controls {
		out = append(out, c.NodeType)
	}
	return out
}

// CheckTargets tells whether the report holds exactly the targets asked for.
func (r *Report) CheckTargets(want []string) error {
	got := slices.Clone(r.Targets())
	w := slices.Clone(want)
	slices.Sort(got)
	slices.Sort(w)
	if !slices.Equal(got, w) {
		return fmt.Errorf("kube-bench reported targets %v, asked for %v", r.Targets(), want)
	}
	return nil
}

// Failures are the checks in state FAIL, in the report's order.
func (r *Report) Failures() []Check {
	var out []Check
	for _, c := range r.Controls {
		for _, g := range c.Groups {
			for _, ch := range g.Checks {
				if ch.State == Fail {
					out = append(out, ch)
				}
			}
		}
	}
	return out
}

// String is a FAIL as a line: its number, its text, and why the audit could
// not run when it could not.
func (c Check) String() string {
	s := c.ID + " " + c.Text
	if c.Reason != "" {
		s += " [" + firstLine(c.Reason) + "]"
	}
	return s
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	const max = 200
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

// HostResult is one host's run.
type HostResult struct {
	Host   string
	Role   string // control-plane or worker
	Report *Report
}

// Markdown is the hosts' totals as a markdown table, a total row under it,
// then every FAIL, host by host.
func Markdown(results []HostResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# CIS Kubernetes Benchmark (%s, kube-bench)\n\n", Benchmark)
	b.WriteString("| host | role | targets | PASS | FAIL | WARN | INFO |\n|---|---|---|---:|---:|---:|---:|\n")
	var all Summary
	for _, h := range results {
		t := h.Report.Totals
		all = all.add(t)
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d | %d |\n", h.Host, h.Role, strings.Join(h.Report.Targets(), ","), t.Pass, t.Fail, t.Warn, t.Info)
	}
	fmt.Fprintf(&b, "| **all** | | | %d | %d | %d | %d |\n", all.Pass, all.Fail, all.Warn, all.Info)
	for _, h := range results {
		fails := h.Report.Failures()
		if len(fails) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n## FAIL on %s (%s)\n\n", h.Host, h.Role)
		for _, f := range fails {
			fmt.Fprintf(&b, "- %s\n", escapeMarkdown(f.String()))
		}
	}
	return b.String()
}

// escapeMarkdown keeps an audit's output from breaking the list.
func escapeMarkdown(s string) string {
	return strings.NewReplacer("|", `\|`, "*", `\*`, "_", `\_`, "`", "\\`").Replace(s)
}
