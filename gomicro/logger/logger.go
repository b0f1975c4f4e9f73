// Package logger is go-micro's logger package (go-micro.dev/v5/logger)
// backed by log/slog: Info, Errorf, Fields and the rest write through
// slog.Default, so the level and handler set there (or by MICRO_LOG_LEVEL
// through a runtime service) apply.
//
// go-micro's Trace level is logged at slog's Debug-4; Fatal logs at Error
// and exits with status 1. Logger implementations of go-micro's own (zap,
// logrus plug-ins) are not supported; give slog a handler instead.
//
// Use log/slog directly in new code; this package is for porting.
package logger

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
)

// Level is a go-micro log level.
type Level int8

// The go-micro levels.
const (
	TraceLevel Level = iota - 2
	DebugLevel
	InfoLevel
	WarnLevel
	ErrorLevel
	FatalLevel
)

// String returns the level's go-micro name, e.g. "info".
func (l Level) String() string {
	switch l {
	case TraceLevel:
		return "trace"
	case DebugLevel:
		return "debug"
	case InfoLevel:
		return "info"
	case WarnLevel:
		return "warn"
	case ErrorLevel:
		return "error"
	case FatalLevel:
		return "fatal"
	}
	return fmt.Sprintf("level(%d)", int8(l))
}

// slogLevel is the slog level l logs at.
func (l Level) slogLevel() slog.Level {
	switch {
	case l <= TraceLevel:
		return slog.LevelDebug - 4
	case l == DebugLevel:
		return slog.LevelDebug
	case l == InfoLevel:
		return slog.LevelInfo
	case l == WarnLevel:
		return slog.LevelWarn
	}
	return slog.LevelError
}

// Logger is the part of go-micro's Logger that services call.
type Logger interface {
	// Fields returns a logger that adds the fields to every entry.
	Fields(fields map[string]any) Logger
	// Log writes an entry made as fmt.Sprint does.
	Log(level Level, v ...any)
	// Logf writes an entry made as fmt.Sprintf does.
	Logf(level Level, format string, v ...any)
	// String names the implementation: "slog".
	String() string
}

// DefaultLogger is what the package-level functions write with.
var DefaultLogger Logger = slogLogger{}

// slogLogger writes through slog.Default with its attributes.
type slogLogger struct{ attrs []any }

func (l slogLogger) Fields(fields map[string]any) Logger {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := append([]any(nil), l.attrs...)
	for _, k := range keys {
		attrs = append(attrs, k, fields[k])
	}
	return slogLogger{attrs: attrs}
}

func (l slogLogger) Log(level Level, v ...any) { l.write(level, fmt.Sprint(v...)) }

func (l slogLogger) Logf(level Level, format string, v ...any) {
	l.write(level, fmt.Sprintf(format, v...))
}

func (l slogLogger) write(level Level, msg string) {
	slog.Default().Log(context.Background(), level.slogLevel(), msg, l.attrs...)
	if level >= FatalLevel {
		os.Exit(1)
	}
}

func (slogLogger) String() string { return "slog" }

// Fields returns DefaultLogger with the fields added to every entry.
func Fields(fields map[string]any) Logger { return DefaultLogger.Fields(fields) }

// Log writes an entry at level with DefaultLogger.
func Log(level Level, v ...any) { DefaultLogger.Log(level, v...) }

// Logf writes a formatted entry at level with DefaultLogger.
func Logf(level Level, format string, v ...any) { DefaultLogger.Logf(level, format, v...) }

// Trace logs at TraceLevel.
func Trace(v ...any) { Log(TraceLevel, v...) }

// Tracef logs at TraceLevel.
func Tracef(format string, v ...any) { Logf(TraceLevel, format, v...) }

// Debug logs at DebugLevel.
func Debug(v ...any) { Log(DebugLevel, v...) }

// Debugf logs at DebugLevel.
func Debugf(format string, v ...any) { Logf(DebugLevel, format, v...) }

// Info logs at InfoLevel.
func Info(v ...any) { Log(InfoLevel, v...) }

// Infof logs at InfoLevel.
func Infof(format string, v ...any) { Logf(InfoLevel, format, v...) }

// Warn logs at WarnLevel.
func Warn(v ...any) { Log(WarnLevel, v...) }

// Warnf logs at WarnLevel.
func Warnf(format string, v ...any) { Logf(WarnLevel, format, v...) }

// Error logs at ErrorLevel.
func Error(v ...any) { Log(ErrorLevel, v...) }

// Errorf logs at ErrorLevel.
func Errorf(format string, v ...any) { Logf(ErrorLevel, format, v...) }

// Fatal logs at ErrorLevel and exits with status 1.
func Fatal(v ...any) { Log(FatalLevel, v...) }

// Fatalf logs at ErrorLevel and exits with status 1.
func Fatalf(format string, v ...any) { Logf(FatalLevel, format, v...) }
