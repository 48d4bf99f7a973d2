package proxy

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

type countingWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return c.buf.Write(p)
}

func (c *countingWriter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

func TestLogWriterBatchesAndLosesNothing(t *testing.T) {
	out := &countingWriter{}
	l := NewLogWriter(out, 50*time.Millisecond)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 250 {
				fmt.Fprintf(l, "msg=request g=%d i=%d\n", g, i)
			}
		}()
	}
	wg.Wait()
	assert.Eventually(t, func() bool { return strings.Count(out.String(), "\n") == 1000 }, 2*time.Second, 10*time.Millisecond, "flushed within the interval")
	assert.Less(t, out.writes, 100, "batched: far fewer writes than lines")
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		assert.Regexp(t, `^msg=request g=\d i=\d+$`, line, "lines stay whole")
	}
	fmt.Fprint(l, "last\n")
	assert.NoError(t, l.Close())
	assert.True(t, strings.HasSuffix(out.String(), "last\n"), "Close writes what is left")
}
