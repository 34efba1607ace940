// Package cleanup keeps what a run must undo when it ends: functions added
// as things are opened, run once, in the order they were added, by
// whichever owner closes (the pool, the cluster client).
package cleanup

import "sync"

// List is safe for concurrent use; its zero value is empty and ready.
type List struct {
	mu sync.Mutex
	fs []func()
}

// Add registers f to run at Run.
func (l *List) Add(f func()) {
	l.mu.Lock()
	l.fs = append(l.fs, f)
	l.mu.Unlock()
}

// Run runs what was added, once: a second Run finds nothing to do.
func (l *List) Run() {
	l.mu.Lock()
	fs := l.fs
	l.fs = nil
	l.mu.Unlock()
	for _, f := range fs {
		f()
	}
}
