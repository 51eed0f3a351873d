package shim

import (
	"encoding/json"
	"io"
	"os"
	"strings"
)

// runtimeLog is the file the OCI runtime writes its own errors to (its
// --log, in JSON where the runtime supports it). Where the runtime's
// stderr is the container's (create, exec), this is the only place its
// error text can be found.
type runtimeLog string

// mark returns the size of the log, to read what a call appends after it.
func (l runtimeLog) mark() int64 {
	fi, err := os.Stat(string(l))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// lastError returns the message of the last error logged after offset.
func (l runtimeLog) lastError(offset int64) string {
	f, err := os.Open(string(l))
	if err != nil {
		return ""
	}
	defer f.Close()
	const maxTail = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size()-offset > maxTail {
		offset = fi.Size() - maxTail
	}
	b, err := io.ReadAll(io.NewSectionReader(f, offset, maxTail))
	if err != nil && len(b) == 0 {
		return ""
	}
	return lastErrorLine(string(b))
}

// lastErrorLine picks the last error out of runtime log lines: JSON lines
// ({"level":"error","msg":...}, runc and crun with --log-format=json) or
// plain text lines (crun writes some errors before it parses its flags).
func lastErrorLine(text string) string {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		line := strings.TrimSpace(lines[i])
		if line == "" {
			continue
		}
		var entry struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if strings.HasPrefix(line, "{") {
			if json.Unmarshal([]byte(line), &entry) == nil {
				if entry.Level == "error" || entry.Level == "fatal" {
					return entry.Msg
				}
				continue
			}
		}
		return line
	}
	return ""
}
