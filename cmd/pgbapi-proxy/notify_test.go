package main

import (
	"bytes"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// notifySocket listens where systemd would (NOTIFY_SOCKET) and returns
// the messages the service sends.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	msgs := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	return path, msgs
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// The unit is Type=notify: serve says READY=1 only once a client can be
// served (listeners bound, server certificate loaded), and STOPPING=1 on
// SIGTERM. The real binary against a socket of the test's own, as
// systemd's notify protocol is (systemd does not run as PID 1 here).
func TestNotifyReadyOnceServing(t *testing.T) {
	d := pkiFor(t)
	_, up := upstream(t)
	sock, msgs := notifySocket(t)
	listen := freePort(t)
	cmd := exec.Command(binary, d.flags("serve", "--listen", listen, "--admin-listen", "127.0.0.1:0", "--upstream", up,
		"--access-file=")...)
	cmd.Env = append(cleanEnv(), "NOTIFY_SOCKET="+sock)
	var logs lockedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	done := make(chan struct{})
	go func() { exited <- cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})

	select {
	case m := <-msgs:
		assert.Contains(t, strings.Split(m, "\n"), "READY=1", m)
	case err := <-exited:
		t.Fatalf("serve exited: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("no READY=1 in 30s:\n%s", logs.String())
	}
	// Ready means ready: the very first request is served, with the
	// cluster's server certificate.
	client := goClient(t, d, "pg-backup-user")
	code, err := getStatus(client, "https://localhost:"+listen[strings.LastIndex(listen, ":")+1:]+"/status")
	require.NoError(t, err)
	assert.Equal(t, 200, code)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case m := <-msgs:
		assert.Contains(t, strings.Split(m, "\n"), "STOPPING=1", m)
	case <-time.After(30 * time.Second):
		t.Fatalf("no STOPPING=1 after SIGTERM:\n%s", logs.String())
	}
	select {
	case err := <-exited:
		assert.NoError(t, err)
	case <-time.After(40 * time.Second):
		t.Fatal("serve did not exit after SIGTERM")
	}
}

// A serve that cannot start (the port is taken, as by Apache on :443)
// exits non-zero with the reason and never says READY=1, so systemctl
// start (and the package's postinst) report the failure.
func TestNotifyNeverReadyOnFailure(t *testing.T) {
	d := pkiFor(t)
	_, up := upstream(t)
	sock, msgs := notifySocket(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	cmd := exec.Command(binary, d.flags("serve", "--listen", busy.Addr().String(), "--admin-listen", "127.0.0.1:0", "--upstream", up)...)
	cmd.Env = append(cleanEnv(), "NOTIFY_SOCKET="+sock)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	require.Error(t, err)
	assert.Contains(t, stderr.String(), busy.Addr().String())
	select {
	case m := <-msgs:
		t.Fatalf("serve failed but told systemd %q", m)
	case <-time.After(200 * time.Millisecond):
	}
}
