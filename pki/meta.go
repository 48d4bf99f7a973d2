package pki

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"regexp"
	"strings"
	"time"
)

// Meta records how init set the PKI up, for later commands (issue-client's
// default key type) and for the proxy (which names its server cert covers).
type Meta struct {
	Cluster   string    `json:"cluster"`
	Hostnames []string  `json:"hostnames"`
	IPs       []string  `json:"ips"`
	KeyType   KeyType   `json:"key_type"`
	Created   time.Time `json:"created"`
}

// ReadMeta reads the state directory's pki.json. A state directory without
// one has not been set up: the error says to run init.
func ReadMeta(l Layout) (*Meta, error) {
	data, err := os.ReadFile(l.Meta())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no PKI here: %q has no %s; run 'pgbapi-proxy init' first, or give the --state-dir where it was set up", l.StateDir, metaName)
	}
	if err != nil {
		return nil, needsRoot(fmt.Errorf("reading PKI settings: %w", err))
	}
	var m Meta
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("reading PKI settings %q: %w", l.Meta(), err)
	}
	return &m, nil
}

// ParsedIPs returns the recorded addresses.
func (m *Meta) ParsedIPs() []net.IP {
	ips := make([]net.IP, 0, len(m.IPs))
	for _, s := range m.IPs {
		if ip := net.ParseIP(s); ip != nil {
			ips = append(ips, ip)
		}
	}
	return ips
}

var (
	// certName is a client or cluster name: it becomes a CN and a file
	// name, so no slashes, no leading dot, nothing a shell would mangle.
	certName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$`)
	// hostLabel is one label of a DNS host name.
	hostLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// CheckName checks a client or cluster name: letters, digits, '.', '_' and
// '-', at most 64 characters, not starting with '.' or '-'.
func CheckName(what, name string) error {
	if !certName.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("invalid %s %q: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", what, name)
	}
	return nil
}

// CheckHostname checks a DNS host name as it may appear in a certificate.
func CheckHostname(h string) error {
	if len(h) == 0 || len(h) > 253 {
		return fmt.Errorf("invalid host name %q", h)
	}
	for _, label := range strings.Split(h, ".") {
		if !hostLabel.MatchString(label) {
			return fmt.Errorf("invalid host name %q: use lower-case letters, digits, '-' and '.'", h)
		}
	}
	return nil
}
