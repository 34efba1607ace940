package phases

import (
	"errors"
	"strings"
	"testing"
)

func TestRemovalVerdict(t *testing.T) {
	for _, tc := range []struct {
		name            string
		voters, healthy []string
		force           bool
		refused         string // in the refusal; "" accepted
		warning         string
	}{
		{name: "3 to 2, both healthy", voters: []string{"cp1", "cp2"}, healthy: []string{"cp1", "cp2"}, warning: "even number"},
		{name: "3 to 2, one down", voters: []string{"cp1", "cp2"}, healthy: []string{"cp1"}, refused: "fewer than the 2 a quorum of 2 needs"},
		{name: "2 to 1", voters: []string{"cp1"}, healthy: []string{"cp1"}, refused: "single etcd member (cp1)"},
		{name: "2 to 1 forced", voters: []string{"cp1"}, healthy: []string{"cp1"}, force: true},
		{name: "2 to 1 forced, the other down", voters: []string{"cp1"}, force: true, refused: "quorum of 1"},
		{name: "1 to 0", force: true, refused: "only etcd member"},
		{name: "5 to 4, one down", voters: []string{"a", "b", "c", "d"}, healthy: []string{"a", "b", "c"}, warning: "4 etcd members remain"},
		{name: "4 to 3, one down", voters: []string{"a", "b", "c"}, healthy: []string{"a", "b"}},
		{name: "4 to 3, two down", voters: []string{"a", "b", "c"}, healthy: []string{"a"}, refused: "1 are healthy (a)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			warning, err := removalVerdict("cp3", tc.voters, tc.healthy, tc.force)
			var q *RefusalError
			switch {
			case tc.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.refused != "" && (!errors.As(err, &q) || !strings.Contains(err.Error(), tc.refused)):
				t.Fatalf("got %v, want a RefusalError saying %q", err, tc.refused)
			case tc.refused == "" && !strings.Contains(warning, tc.warning), tc.warning == "" && warning != "":
				t.Fatalf("warning %q, want %q", warning, tc.warning)
			}
		})
	}
}
