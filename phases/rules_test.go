package phases

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The cluster is asked in one place, internal/cluster, with typed calls
// and typed errors. These rules keep it that way in the phases: no
// kubectl runs on a host, etcdctl only takes snapshots (the file is what
// is read, never its output), and no error is told apart by its text.
func TestAskingTheClusterHasOneRoom(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	rules := []struct {
		re   *regexp.Regexp
		why  string
		okIn func(fn string) bool
	}{
		{regexp.MustCompile(`bin\("kubectl"\)|"kubectl `), "runs kubectl on a host: ask through internal/cluster", nil},
		{regexp.MustCompile(`bin\("etcdctl"\)`), "runs etcdctl: ask etcd through internal/cluster",
			func(fn string) bool { return fn == "etcdctlSnapshot" }},
		{regexp.MustCompile(`strings\.(Contains|HasPrefix|HasSuffix|EqualFold|Index)\([^)]*\.Error\(\)|\.Error\(\) *(==|!=)`),
			"tells an error apart by its text: use errors.Is with a typed error", nil},
		{regexp.MustCompile(`json\.Unmarshal\(\[\]byte\(out\)|-o json|-w json|jsonpath=`),
			"parses a command's JSON output: ask through internal/cluster", nil},
	}
	fnDecl := regexp.MustCompile(`^func (\([^)]*\) )?(\w+)`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fn := ""
		for i, line := range strings.Split(string(data), "\n") {
			if m := fnDecl.FindStringSubmatch(line); m != nil {
				fn = m[2]
			}
			code, _, _ := strings.Cut(line, "//")
			for _, r := range rules {
				if r.re.MatchString(code) && (r.okIn == nil || !r.okIn(fn)) {
					t.Errorf("%s:%d (%s) %s:\n\t%s", f, i+1, fn, r.why, strings.TrimSpace(line))
				}
			}
		}
	}
}
