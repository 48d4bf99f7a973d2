package pki

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// When a rename fails half-way, the files already replaced get their old
// content back and no temporary file stays.
func TestFileSetUndoesAFailedCommit(t *testing.T) {
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	require.NoError(t, os.WriteFile(a, []byte("old a"), 0o644))
	require.NoError(t, os.WriteFile(b, []byte("old b"), 0o644))
	var set fileSet
	defer set.abort()
	require.NoError(t, set.stage(a, []byte("new a"), 0o644, nil))
	require.NoError(t, set.stage(c, []byte("new c"), 0o644, nil))
	require.NoError(t, set.stage(b, []byte("new b"), 0o644, nil))
	// b turns into a non-empty directory: renaming onto it fails.
	require.NoError(t, os.Remove(b))
	require.NoError(t, os.MkdirAll(filepath.Join(b, "x"), 0o755))

	require.ErrorContains(t, set.commit(), `writing "`+b+`"`)
	data, err := os.ReadFile(a)
	require.NoError(t, err)
	assert.Equal(t, "old a", string(data))
	assert.NoFileExists(t, c, "a file that did not exist is gone again")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"a", "b"}, names)
}
