package shim

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// copyLog copies r into the CRI log line by line, as containerd's
// redirectLogs does. Lines longer than maxLogLineSize are split into
// partial ("P") entries, and so is a last line the stream ends without a
// newline: readers (kubectl logs, kubelet's termination message from the
// logs) then add no newline the container never wrote. A pty master
// returns EIO once the terminal is closed: that is EOF.
func copyLog(lw *logWriter, stream string, r io.Reader) {
	br := bufio.NewReaderSize(r, maxLogLineSize)
	for {
		line, isPrefix, err := readLine(br)
		if len(line) > 0 || err == nil {
			if lw != nil {
				lw.WriteEntry(stream, isPrefix || err != nil, line)
			}
		}
		if err != nil {
			return
		}
	}
}

// readLine is containerd's (internal/cri/io/logger.go): a line without its
// "\n" or "\r\n", or as much of it as fills the buffer (isPrefix), or at
// the end of the stream what is left with the error.
func readLine(b *bufio.Reader) (line []byte, isPrefix bool, err error) {
	line, err = b.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		// A "\r\n" that straddles the buffer stays whole for the next read.
		if len(line) > 0 && line[len(line)-1] == '\r' {
			if err := b.UnreadByte(); err == nil {
				line = line[:len(line)-1]
			}
		}
		return line, true, nil
	}
	if len(line) > 0 && line[len(line)-1] == '\n' {
		drop := 1
		if len(line) > 1 && line[len(line)-2] == '\r' {
			drop = 2
		}
		line = line[:len(line)-drop]
	}
	return line, false, err
}

// Log rotation, as kubelet's containerLogMaxSize / containerLogMaxFiles
// defaults; rotation is done by the shim, not by a kubelet log manager.
const (
	maxLogLineSize     = 16 * 1024
	defaultLogMaxSize  = 10 << 20
	defaultLogMaxFiles = 5
)

// logWriter writes CRI log entries ("<RFC3339Nano> <stream> <F|P> <text>\n")
// to a file, rotating it to <path>.<timestamp> past maxSize and keeping at
// most maxFiles files (the live one included).
type logWriter struct {
	mu       sync.Mutex
	path     string
	f        *os.File
	size     int64
	maxSize  int64
	maxFiles int
	// entry is WriteEntry's buffer, reused under mu: a chatty container
	// makes no garbage per line in its shim.
	entry []byte
}

func newLogWriter(path string, maxSize int64, maxFiles int) (*logWriter, error) {
	w := &logWriter{path: path, maxSize: maxSize, maxFiles: maxFiles}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *logWriter) open() error {
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open log %s: %w", w.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat log %s: %w", w.path, err)
	}
	w.f, w.size = f, st.Size()
	return nil
}

// WriteEntry writes one CRI log entry.
func (w *logWriter) WriteEntry(stream string, partial bool, line []byte) {
	tag := "F"
	if partial {
		tag = "P"
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return
	}
	entry := now.AppendFormat(w.entry[:0], time.RFC3339Nano)
	entry = append(entry, ' ')
	entry = append(entry, stream...)
	entry = append(entry, ' ')
	entry = append(entry, tag...)
	entry = append(entry, ' ')
	entry = append(entry, line...)
	entry = append(entry, '\n')
	w.entry = entry
	if w.size > 0 && w.size+int64(len(entry)) > w.maxSize {
		w.rotate(now)
	}
	n, _ := w.f.Write(entry)
	w.size += int64(n)
}

func (w *logWriter) rotate(now time.Time) {
	w.f.Close()
	w.f = nil
	_ = os.Rename(w.path, w.path+"."+now.UTC().Format("20060102-150405.000000000"))
	old, _ := filepath.Glob(w.path + ".*")
	// Timestamps sort lexically; drop the oldest beyond maxFiles-1.
	for len(old) > w.maxFiles-1 {
		_ = os.Remove(old[0])
		old = old[1:]
	}
	_ = w.open()
}

// Close closes the log file.
func (w *logWriter) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}

// ttyStdin is a terminal's input: closing it sends EOF (^D) instead of
// closing the terminal, whose output is still wanted.
type ttyStdin struct{ f *os.File }

func (t ttyStdin) Write(p []byte) (int, error) { return t.f.Write(p) }
func (t ttyStdin) Close() error {
	_, err := t.f.Write([]byte{4})
	return err
}
