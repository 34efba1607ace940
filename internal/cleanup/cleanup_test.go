package cleanup

import (
	"slices"
	"sync"
	"testing"
)

func TestList(t *testing.T) {
	var l List
	var mu sync.Mutex
	var got []int
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); l.Add(func() { mu.Lock(); got = append(got, i); mu.Unlock() }) }()
	}
	wg.Wait()
	l.Run()
	l.Run()
	slices.Sort(got)
	if !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("ran %v, want each once", got)
	}
}
