package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzParse: whatever the bytes, the loader answers with a cluster or an
// *InvalidError, never a panic, the same answer twice, and quickly.
// `make test` runs it briefly, `make fuzz` for minutes.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{valid, rulesBase, Example, "", "#", "- a", "a: [", "apiVersion: 1\nkind: {}\n",
		"spec:\n  hosts:\n    - \n", "spec: {hosts: [{name: a, address: '::ffff:1.2.3.4', roles: [control-plane]}]}",
		"spec: {certificates: {validity: 1e309d}}", "spec: {controlPlane: {endpoint: '[::1]:0'}}",
		"a: &a [*a, *a]\nb: *a\n", "spec:\n\thosts: []\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		c, _, err := Parse("fuzz.yaml", data)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Parse took %s", d)
		}
		var inv *InvalidError
		switch {
		case err == nil && c == nil:
			t.Fatal("no cluster and no error")
		case err != nil && !errors.As(err, &inv):
			t.Fatalf("error of type %T: %v", err, err)
		case err != nil && strings.TrimSpace(err.Error()) == "":
			t.Fatal("an empty error message")
		}
		_, _, again := Parse("fuzz.yaml", data)
		if (err == nil) != (again == nil) || err != nil && err.Error() != again.Error() {
			t.Fatalf("two answers: %v / %v", err, again)
		}
		if err == nil {
			// A valid cluster publishes and parses back (what a node
			// joining on its own reads).
			if _, perr := Published(c); perr != nil {
				t.Fatalf("Published: %v", perr)
			}
		}
	})
}
