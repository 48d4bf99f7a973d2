package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgbapi/pgbapi-proxy/internal/needs"
	"github.com/pgbapi/pgbapi-proxy/pki/pkitest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// README "Replacing Apache on a TPA host", step by step, on a TPA-shaped
// host (openssl-made RSA 4096 CA without keyUsage, clients without EKU,
// PKCS#1 keys, a server certificate for barman1, barman1.example.com and
// 10.1.2.3), with and without the CA key. Paths are the test's own: the
// TPA dir, the state dir and a scratch system trust directory.
func TestReplacingApacheWalkthrough(t *testing.T) {
	needs.Command(t, "curl", "curl")
	needs.Command(t, "tar", "tar")
	// A cluster name of its own: curl also reads the system bundle, where
	// a package test running at the same time may have put another
	// "tpa.CA" (same name, other key), which would shadow this one.
	f := pkitest.TPAHost(t, pkitest.Options{Cluster: "walkthrough", ExtraDNS: []string{"barman1.example.com"}, ExtraIPs: []string{"10.1.2.3"}})
	for _, withKey := range []bool{true, false} {
		t.Run(map[bool]string{true: "with the CA key", false: "without the CA key"}[withKey], func(t *testing.T) {
			t.Parallel()
			d := tpaDirs(t, f)
			trust := t.TempDir()

			// 1. Keep the files, and a copy.
			backup := filepath.Join(t.TempDir(), "before.tar.gz")
			requireOK(t, runCmd(t, exec.Command("tar", "-C", filepath.Dir(d.tpa), "-czf", backup, filepath.Base(d.tpa))))

			// 2. Adopt them.
			args := d.flags("init")
			if withKey {
				args = append(args, "--ca-cert", filepath.Join(d.tpa, "CA.crt"), "--ca-key", f.CAKey)
			}
			r := cli(t, trustEnv(trust), args...)
			requireOK(t, r)
			assert.Regexp(t, `(?m)^adopted\s+certificate pemagent-barman1\.crt`, r.stdout)
			openssl(t, "rehash", trust)

			// 3. Check: list and doctor.
			r = cli(t, nil, d.flags("list")...)
			requireOK(t, r)
			assert.Regexp(t, `(?m)^pemagent-barman1\s.*valid \(adopted\)`, r.stdout)
			assert.Regexp(t, `(?m)^pg-backup-user\s.*valid \(adopted\)`, r.stdout)

			// 4. No Apache here. 5. Serve; with the CA key, renewals are
			// forced quickly to show the adopted names stay served.
			_, upURL := upstream(t)
			extra := []string{}
			if withKey {
				extra = append(extra, "--server-cert-lifetime", "8s")
			}
			p := startProxy(t, d, upURL, nil, extra...)

			// 6. The documented curl, by host name, without --cacert.
			documented := func(client, host string) result {
				return runCmd(t, exec.Command("curl", "-sS", "--max-time", "10", "--capath", trust, "--resolve", host+":"+p.port()+":127.0.0.1",
					"--cert", filepath.Join(d.tpa, client+".crt"), "--key", filepath.Join(d.tpa, client+".key"),
					"-X", "GET", "https://"+host+":"+p.port()+"/diagnose"))
			}
			for _, client := range []string{"pg-backup-user", "pemagent-barman1"} {
				r := documented(client, "barman1")
				require.Equal(t, 0, r.code, "%s: %s", client, r.stderr)
				assert.True(t, strings.HasPrefix(r.stdout, `{"global"`), r.stdout)
			}
			// A client that does only RSA (TLS 1.2, ECDHE-RSA) still gets
			// in, as it did through Apache: the PKI stays RSA (an ECDSA
			// companion is served to the others).
			rsaOnly := func() result {
				return runCmd(t, exec.Command("curl", "-sS", "--max-time", "10", "--capath", trust, "--resolve", "barman1:"+p.port()+":127.0.0.1",
					"--tlsv1.2", "--tls-max", "1.2", "--ciphers", "ECDHE-RSA-AES128-GCM-SHA256",
					"--cert", filepath.Join(d.tpa, "pg-backup-user.crt"), "--key", filepath.Join(d.tpa, "pg-backup-user.key"),
					"https://barman1:"+p.port()+"/status"))
			}
			r = rsaOnly()
			assert.Equal(t, 0, r.code, "an RSA-only client: %s", r.stderr)
			if withKey {
				first := servedSerialFor(t, p, trust, "barman1")
				require.Eventually(t, func() bool { return servedSerialFor(t, p, trust, "barman1") != first }, 30*time.Second, 200*time.Millisecond, "renewed")
				for _, host := range []string{"barman1", "barman1.example.com"} {
					r := documented("pg-backup-user", host)
					assert.Equal(t, 0, r.code, "after renewal, by %s: %s", host, r.stderr)
				}
				r = rsaOnly()
				assert.Equal(t, 0, r.code, "an RSA-only client after renewal: %s", r.stderr)
			}

			// 7. Revoke the PEM agent: refused within 2 s on a kept-alive
			// connection and on new ones; pg-backup-user goes on.
			agent := keptAlive(t, d, trust, "pemagent-barman1", p.port())
			code, err := getStatus(agent, "https://barman1:"+p.port()+"/status")
			require.NoError(t, err)
			require.Equal(t, 200, code)
			requireOK(t, cli(t, nil, d.flags("revoke", "--name", "pemagent-barman1")...))
			revoked := time.Now()
			require.Eventually(t, func() bool {
				code, err := getStatus(agent, "https://barman1:"+p.port()+"/status")
				return err != nil || code == http.StatusForbidden
			}, 2*time.Second, 50*time.Millisecond, "the open connection is refused within 2 s")
			require.Eventually(t, func() bool { return documented("pemagent-barman1", "barman1").code != 0 }, 2*time.Second, 50*time.Millisecond)
			assert.Less(t, time.Since(revoked), 2*time.Second)
			assert.Equal(t, 0, documented("pg-backup-user", "barman1").code)
			if withKey {
				out, err := exec.Command("openssl", "verify", "-crl_check", "-CAfile", filepath.Join(d.tpa, "root.crt"),
					"-CRLfile", filepath.Join(d.tpa, "crl.pem"), filepath.Join(d.tpa, "pemagent-barman1.crt")).CombinedOutput()
				require.Error(t, err)
				assert.Contains(t, string(out), "certificate revoked")
			}
			// list says what the proxy enforces.
			assert.Regexp(t, `(?m)^pemagent-barman1\s.*revoked`, cli(t, nil, d.flags("list")...).stdout)
		})
	}
}

// keptAlive is an HTTPS client for name that keeps its connection to
// barman1 (dialled at 127.0.0.1) open between requests.
func keptAlive(t *testing.T, d dirs, trustDir, name, port string) *http.Client {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(d.tpa, name+".crt"), filepath.Join(d.tpa, name+".key"))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pemData, err := os.ReadFile(filepath.Join(d.tpa, "root.crt"))
	require.NoError(t, err)
	require.True(t, pool.AppendCertsFromPEM(pemData))
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "barman1"},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, "127.0.0.1:"+port)
		},
	}}
}

// servedSerialFor is the serial of the certificate served for host.
func servedSerialFor(t *testing.T, p *proxyProc, trustDir, host string) string {
	t.Helper()
	conn, err := tls.Dial("tcp", "127.0.0.1:"+p.port(), &tls.Config{ServerName: host, InsecureSkipVerify: true}) //nolint:gosec // only reads the serial
	if err != nil {
		return ""
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}
