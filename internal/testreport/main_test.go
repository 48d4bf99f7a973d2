package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// A captured `go test -json` stream: one pass, one fail, one skip.
const stream = `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"--- PASS: TestA (0.00s)\n"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestB","Output":"=== RUN   TestB\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:9: broken\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"--- FAIL: TestB (0.00s)\n"}
{"Action":"fail","Package":"p","Test":"TestB"}
{"Action":"output","Package":"p","Test":"TestC","Output":"=== RUN   TestC\n"}
{"Action":"output","Package":"p","Test":"TestC","Output":"--- SKIP: TestC (0.00s)\n"}
{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:5: lintian is not installed (apt-get install lintian)\n"}
{"Action":"skip","Package":"p","Test":"TestC"}
{"Action":"output","Package":"p","Test":"TestD","Output":"=== RUN   TestD\n"}
{"Action":"output","Package":"p","Test":"TestD","Output":"    d_test.go:7: a soak test: run it with make soak\n"}
{"Action":"output","Package":"p","Test":"TestD","Output":"--- SKIP: TestD (0.00s)\n"}
{"Action":"skip","Package":"p","Test":"TestD"}
{"Action":"output","Package":"q","Output":"?   \tq\t[no test files]\n"}
{"Action":"skip","Package":"q"}
{"Action":"output","Package":"p","Output":"PASS\n"}
{"Action":"output","Package":"p","Output":"FAIL\tp\t0.01s\n"}
{"Action":"fail","Package":"p"}
`

func TestReport(t *testing.T) {
	var out bytes.Buffer
	r := &report{out: &out, outputs: map[string][]string{}}
	r.read(strings.NewReader(stream))
	r.summary()
	assert.Equal(t, "=== RUN   TestB\n    b_test.go:9: broken\n--- FAIL: TestB (0.00s)\n?   \tq\t[no test files]\nFAIL\tp\t0.01s\n"+
		"testreport: 2 tests skipped:\nSKIP p TestC: c_test.go:5: lintian is not installed (apt-get install lintian)\n"+
		"SKIP p TestD: d_test.go:7: a soak test: run it with make soak\n", out.String())
}
