package proxy

import (
	"errors"
	"net"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The new bounds take their defaults when zero and name themselves when
// wrong.
func TestConfigBoundsForOneSourceAndBodies(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	base := func() Config {
		return Config{Listener: l, AdminListener: l, Upstream: &url.URL{Scheme: "http", Host: "127.0.0.1:7480"}}
	}

	c := base()
	c.setDefaults()
	require.NoError(t, c.Validate())
	assert.Equal(t, DefaultMaxPendingHandshakesPerIP, c.MaxPendingHandshakesPerIP, "0 is the default, not unlimited")
	assert.Equal(t, int64(DefaultMaxBufferedBodyBytes), c.MaxBufferedBodyBytes)

	c = base()
	c.MaxBodyBytes = 64 << 20
	c.setDefaults()
	require.NoError(t, c.Validate())
	assert.Equal(t, int64(64<<20), c.MaxBufferedBodyBytes, "the default budget holds one largest body")

	for field, tune := range map[string]func(*Config){
		"MaxPendingHandshakes":      func(c *Config) { c.MaxPendingHandshakes = -1 },
		"MaxPendingHandshakesPerIP": func(c *Config) { c.MaxPendingHandshakesPerIP = -1 },
		"MaxBufferedBodyBytes":      func(c *Config) { c.MaxBufferedBodyBytes = c.MaxBodyBytes - 1 },
	} {
		c := base()
		c.setDefaults()
		tune(&c)
		var fe *FieldError
		require.True(t, errors.As(c.Validate(), &fe), field)
		assert.Equal(t, field, fe.Field)
	}
}
