package memberlist

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// newStdLogger returns a *log.Logger for memberlist whose output is sent to
// l, one slog record per line memberlist prints.
func newStdLogger(l *slog.Logger) *log.Logger {
	return log.New(&logBridge{log: l}, "", 0)
}

// logBridge is the io.Writer behind memberlist's *log.Logger. memberlist
// tags its lines "[DEBUG] ", "[INFO] ", "[WARN] " or "[ERR] "; the tag
// picks the slog level and is stripped, with the "memberlist: " prefix.
// Untagged lines are logged at Info.
type logBridge struct {
	log *slog.Logger
}

// levelTags maps memberlist's tags to slog levels.
var levelTags = []struct {
	tag   string
	level slog.Level
}{
	{"[DEBUG]", slog.LevelDebug},
	{"[TRACE]", slog.LevelDebug},
	{"[INFO]", slog.LevelInfo},
	{"[WARN]", slog.LevelWarn},
	{"[ERR]", slog.LevelError},
	{"[ERROR]", slog.LevelError},
}

// Write logs one line. It never fails, so memberlist never sees an error.
func (b *logBridge) Write(p []byte) (int, error) {
	level, msg := parseLogLine(string(p))
	ctx := context.Background()
	if b.log.Enabled(ctx, level) {
		b.log.Log(ctx, level, msg, "logger", "memberlist")
	}
	return len(p), nil
}

// parseLogLine splits a memberlist log line into its level and message.
func parseLogLine(line string) (slog.Level, string) {
	line = strings.TrimRight(line, "\r\n")
	level := slog.LevelInfo
	for _, t := range levelTags {
		if rest, ok := strings.CutPrefix(line, t.tag); ok {
			level, line = t.level, strings.TrimLeft(rest, " ")
			break
		}
	}
	return level, strings.TrimPrefix(line, "memberlist: ")
}
