package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPackageVersion(t *testing.T) {
	for in, want := range map[string]string{
		"1.2.3":             "1.2.3",
		"v1.2.3":            "1.2.3",
		"v1.2.3-4-gabc1234": "1.2.3+git4.gabc1234",
		"v1.2.3-dirty":      "1.2.3+gitdirty",
		"2c7b7b9":           "0.0.0+git2c7b7b9",
		"2c7b7b9-dirty":     "0.0.0+git2c7b7b9.dirty",
		"abcdef0":           "0.0.0+gitabcdef0",
		"1.0.1":             "1.0.1",
		// make's version without tags: kept as it is, so that it sorts.
		"0.0.0+git20261130051332.bf09a95":       "0.0.0+git20261130051332.bf09a95",
		"0.0.0+git20261130051332.bf09a95.dirty": "0.0.0+git20261130051332.bf09a95.dirty",
	} {
		got, err := PackageVersion(in)
		require.NoError(t, err)
		assert.Equal(t, want, got, in)
		assert.NotContains(t, got, "-", "a '-' would split version and release")
	}
	_, err := PackageVersion("")
	require.Error(t, err)
}
