package cis

import (
	"os"
	"strings"
	"testing"
)

// testdata/kube-bench-cis-1.12.json is real output of bin/kube-bench
// (v0.15.6) with this directory's config.yaml, on a machine with no
// cluster, trimmed to a few checks by kube-bench itself:
//
//	kube-bench run --config-dir CFG --benchmark cis-1.12 --targets master,node \
//	  --check 1.1.1,1.1.12,4.1.1,4.1.2,4.1.7,4.1.3 --skip 4.1.3 --json --outputfile OUT
//
// so it holds every state: FAIL (files absent; an audit that could not
// run), PASS (4.1.2 accepts "File not found"), WARN (an unscored check) and
// INFO (a skipped one), in two targets.
func sample(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/kube-bench-cis-1.12.json")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParse(t *testing.T) {
	r, err := Parse(sample(t))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Summary{Pass: 1, Fail: 3, Warn: 1, Info: 1}); r.Totals != want {
		t.Errorf("totals %+v, want %+v", r.Totals, want)
	}
	if got := strings.Join(r.Targets(), ","); got != "master,node" {
		t.Errorf("targets %s", got)
	}
	if err := r.CheckTargets([]string{"node", "master"}); err != nil {
		t.Error(err)
	}
	if err := r.CheckTargets(ControlPlaneTargets); err == nil {
		t.Error("a report of master and node passed for the control plane's five targets")
	}
	var ids []string
	for _, f := range r.Failures() {
		ids = append(ids, f.ID)
		if f.Text == "" || !f.Scored {
			t.Errorf("FAIL %s: text %q, scored %v", f.ID, f.Text, f.Scored)
		}
	}
	if got := strings.Join(ids, " "); got != "1.1.1 1.1.12 4.1.1" {
		t.Errorf("FAILs %s, want 1.1.1 1.1.12 4.1.1", got)
	}
	// A FAIL whose audit could not run says why, on one line.
	f := r.Failures()[1]
	if s := f.String(); !strings.HasPrefix(s, "1.1.12 Ensure that the etcd data directory ownership is set to etcd:etcd (Automated) [failed to run: ") || strings.Contains(s, "\n") {
		t.Errorf("FAIL line %q", s)
	}
	if got := r.Controls[1].Groups[0].Checks[1]; got.ID != "4.1.2" || got.State != Pass || got.ActualValue != "File not found" {
		t.Errorf("4.1.2: %+v", got)
	}
}

func TestParseRefuses(t *testing.T) {
	good := string(sample(t))
	for name, data := range map[string]string{
		"not JSON":      "Unable to detect running programs",
		"no controls":   `{"Totals":{"total_pass":0,"total_fail":0,"total_warn":0,"total_info":0}}`,
		"--nototals":    `[{"id":"4","node_type":"node","tests":[]}]`,
		"wrong totals":  strings.Replace(good, `"Totals":{"total_pass":1,"total_fail":3`, `"Totals":{"total_pass":1,"total_fail":0`, 1),
		"section total": strings.Replace(good, `"total_pass":0,"total_fail":2`, `"total_pass":0,"total_fail":1`, 1),
		"unknown state": strings.Replace(good, `"status":"PASS"`, `"status":"OK"`, 1),
		"renamed field": strings.ReplaceAll(good, `"status":`, `"state":`),
	} {
		if data == good {
			t.Fatalf("%s: the edit changed nothing", name)
		}
		if _, err := Parse([]byte(data)); err == nil {
			t.Errorf("%s: parsed", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func TestMarkdown(t *testing.T) {
	r, err := Parse(sample(t))
	if err != nil {
		t.Fatal(err)
	}
	clean := &Report{Controls: []Controls{{ID: "4", NodeType: "node", Summary: Summary{Pass: 20, Warn: 7}}}, Totals: Summary{Pass: 20, Warn: 7}}
	md := Markdown([]HostResult{{Host: "lab1", Role: "control-plane", Report: r}, {Host: "lab4", Role: "worker", Report: clean}})
	for _, want := range []string{
		"| host | role | targets | PASS | FAIL | WARN | INFO |\n|---|---|---|---:|---:|---:|---:|\n",
		"| lab1 | control-plane | master,node | 1 | 3 | 1 | 1 |\n",
		"| lab4 | worker | node | 20 | 0 | 7 | 0 |\n",
		"| **all** | | | 21 | 3 | 8 | 1 |\n",
		"## FAIL on lab1 (control-plane)\n\n- 1.1.1 Ensure that the API server pod specification file permissions are set to 600 or more restrictive (Automated)\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "FAIL on lab4") {
		t.Errorf("a host without FAIL has a FAIL section:\n%s", md)
	}
}
