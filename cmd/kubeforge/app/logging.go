package app

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/kubeforge/kubeforge/internal/statedir"
)

// logSink is the logger's configuration: the terminal at the -v level and,
// when set, a file with everything. Both are redacted.
type logSink struct {
	terminal io.Writer
	level    slog.Level
	redact   *redactor
	file     *os.File
}

func newLogSink(terminal io.Writer, verbosity int, redact *redactor) *logSink {
	level := slog.LevelWarn
	switch {
	case verbosity >= 2:
		level = slog.LevelDebug
	case verbosity == 1:
		level = slog.LevelInfo
	}
	return &logSink{terminal: terminal, level: level, redact: redact}
}

// openFile starts writing the full log to path (0600: it may describe
// hosts and commands, never secrets).
func (s *logSink) openFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	if s.file != nil {
		s.file.Close()
	}
	s.file = f
	return nil
}

func (s *logSink) logger() *slog.Logger {
	opts := func(l slog.Level) *slog.HandlerOptions {
		return &slog.HandlerOptions{Level: l, ReplaceAttr: s.redact.replaceAttr}
	}
	handlers := []slog.Handler{slog.NewTextHandler(s.terminal, opts(s.level))}
	if s.file != nil {
		handlers = append(handlers, slog.NewJSONHandler(s.file, opts(slog.LevelDebug)))
	}
	return slog.New(slog.NewMultiHandler(handlers...))
}

func (s *logSink) close() error {
	if s.file == nil {
		return nil
	}
	return s.file.Close()
}

// defaultLogFile is where a cluster action logs when --log-file is not
// given: <state dir>/logs/<action>-<time>.log.
func defaultLogFile(state statedir.Dir, action string) string {
	return state.LogFile(action, time.Now())
}
