package app

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
)

// newLogger returns the logger commands pass down: warnings (or more with
// -v) on the terminal, everything in the log file when one is given.
func newLogger(terminal io.Writer, verbosity int, logFile string) (*slog.Logger, func() error, error) {
	level := slog.LevelWarn
	switch {
	case verbosity >= 2:
		level = slog.LevelDebug
	case verbosity == 1:
		level = slog.LevelInfo
	}
	handlers := []slog.Handler{slog.NewTextHandler(terminal, &slog.HandlerOptions{Level: level})}
	closeFn := func() error { return nil }
	if logFile != "" {
		if err := os.MkdirAll(filepath.Dir(logFile), 0o700); err != nil {
			return nil, nil, fmt.Errorf("--log-file: %w", err)
		}
		f, err := os.OpenFile(logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("--log-file: %w", err)
		}
		handlers = append(handlers, slog.NewJSONHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
		closeFn = f.Close
	}
	return slog.New(slog.NewMultiHandler(handlers...)), closeFn, nil
}
