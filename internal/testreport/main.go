// Command testreport runs `go test -json ...` and prints what a plain
// `go test` would (every package's ok/FAIL line, the output of failed
// tests), then one line per skipped test with its reason, so that no
// skip passes unseen. It exits with the status of go test.
//
//	go run ./internal/testreport go test -count=1 -json ./...
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

type report struct {
	out     io.Writer
	outputs map[string][]string // test output, by package and test
	skips   []string
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testreport go test -json ...")
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(1)
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(1)
	}
	r := &report{out: os.Stdout, outputs: map[string][]string{}}
	r.read(stdout)
	err = cmd.Wait()
	r.summary()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		os.Exit(exit.ExitCode())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(1)
	}
}

func (r *report) read(in io.Reader) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// Not an event (a build error before the test binary ran).
			fmt.Fprintln(r.out, sc.Text())
			continue
		}
		r.event(e)
	}
}

func (r *report) event(e event) {
	key := e.Package + " " + e.Test
	switch {
	case e.Test == "" && e.Action == "output":
		// Package level: the ok/FAIL lines, build errors, TestMain's own
		// output; not the PASS line nor the per-test framing -v adds.
		if e.Output != "PASS\n" && !strings.HasPrefix(e.Output, "=== ") {
			fmt.Fprint(r.out, e.Output)
		}
	case e.Action == "output":
		r.outputs[key] = append(r.outputs[key], e.Output)
	case e.Action == "fail":
		for _, line := range r.outputs[key] {
			fmt.Fprint(r.out, line)
		}
		delete(r.outputs, key)
	case e.Action == "skip" && e.Test == "":
		// A package without tests: go test says "[no test files]".
	case e.Action == "skip":
		r.skips = append(r.skips, fmt.Sprintf("SKIP %s %s: %s", e.Package, e.Test, reason(r.outputs[key])))
		delete(r.outputs, key)
	case e.Action == "pass":
		delete(r.outputs, key)
	}
}

// reason is what the test said when it skipped: its log lines (streamed
// before the "--- SKIP" line, or after it in older Go), joined, without
// the framing lines.
func reason(lines []string) string {
	var said []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- ") {
			continue
		}
		said = append(said, t)
	}
	if len(said) == 0 {
		return "(no reason given)"
	}
	return strings.Join(said, " ")
}

func (r *report) summary() {
	sort.Strings(r.skips)
	if len(r.skips) == 0 {
		fmt.Fprintln(r.out, "testreport: no test skipped")
		return
	}
	fmt.Fprintf(r.out, "testreport: %d tests skipped:\n", len(r.skips))
	for _, s := range r.skips {
		fmt.Fprintln(r.out, s)
	}
}
