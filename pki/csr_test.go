package pki

import (
	"crypto/rsa"
	"math/big"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An RSA key over 8192 bits is refused: Go's TLS (this proxy) refuses such
// client keys, so the certificate could never connect.
func TestCSRKeyOver8192BitsIsRefused(t *testing.T) {
	huge := &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 9215), E: 65537}
	err := checkCSRKey(huge)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "RSA 9216: TLS servers (this one too) refuse client keys over 8192 bits")
	ok := &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 4095), E: 65537}
	assert.NoError(t, checkCSRKey(ok))
}
