package proxy

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSpoofable(t *testing.T) {
	for name, want := range map[string]bool{
		"X-Forwarded-For":          true,
		"X-Forwarded-User":         true,
		"Forwarded":                true,
		"X-Real-Ip":                true,
		"X-Client-Cert-Cn":         true,
		"X-Ssl-Client-Verify":      true,
		"Ssl-Client-S-Dn":          true,
		"Content-Type":             false,
		"Expect":                   false,
		"Authorization":            false,
		"X-Request-Id":             false,
		"X-Forwardedfor-Lookalike": false,
		"X_Client_Cert_CN":         true,
		"X_Real_IP":                true,
		"X_forwarded_for":          true,
		"Some_Header":              true,
	} {
		assert.Equal(t, want, spoofable(name), name)
	}
}

func TestLimiter(t *testing.T) {
	var none *limiter
	release, err := none.acquire(context.Background())
	require.NoError(t, err)
	release()

	l := &limiter{slots: make(chan struct{}, 1), wait: 50 * time.Millisecond}
	release, err = l.acquire(context.Background())
	require.NoError(t, err)
	start := time.Now()
	_, err = l.acquire(context.Background())
	require.ErrorIs(t, err, errQueueFull)
	assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond, "waited in line first")

	go func() { time.Sleep(10 * time.Millisecond); release() }()
	release2, err := l.acquire(context.Background())
	require.NoError(t, err, "a slot freed while waiting is taken")
	release2()
}
