package proxy

import (
	"io"
	"sync"
	"time"
)

// LogWriter batches log lines and writes them at most every interval (or
// when 64 KiB are waiting), so that the access log costs one write(2) per
// batch, not per request. Each Write is one whole log record, kept whole.
// Close writes what is left; a crash can lose at most one interval.
type LogWriter struct {
	mu   sync.Mutex
	w    io.Writer
	buf  []byte
	done chan struct{}
	wg   sync.WaitGroup
}

const logFlushSize = 64 << 10

// NewLogWriter starts the flusher.
func NewLogWriter(w io.Writer, interval time.Duration) *LogWriter {
	l := &LogWriter{w: w, done: make(chan struct{}), buf: make([]byte, 0, logFlushSize)}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				l.Flush()
			case <-l.done:
				l.Flush()
				return
			}
		}
	}()
	return l
}

func (l *LogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if len(l.buf) >= logFlushSize {
		l.flushLocked()
	}
	return len(p), nil
}

// Flush writes what is waiting.
func (l *LogWriter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
}

func (l *LogWriter) flushLocked() {
	if len(l.buf) == 0 {
		return
	}
	l.w.Write(l.buf) //nolint:errcheck // nowhere left to report a failing log
	l.buf = l.buf[:0]
}

// Close stops the flusher and writes what is left.
func (l *LogWriter) Close() error {
	close(l.done)
	l.wg.Wait()
	return nil
}
