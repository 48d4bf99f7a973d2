package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pgbapi/pgbapi-proxy/internal/needs"
	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var flagInHelp = regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z][a-z0-9-]*)`)

// The man page lists every subcommand and every flag --help lists.
func TestManPageMatchesHelp(t *testing.T) {
	r := cli(t, nil, "manpage")
	requireOK(t, r)
	man := r.stdout
	assert.True(t, strings.HasPrefix(man, ".TH PGBAPI-PROXY 1 "))
	for _, c := range commands() {
		help := cli(t, nil, c.name, "--help")
		requireOK(t, help)
		assert.Contains(t, man, `.SS "`+strings.ReplaceAll(c.name, "-", `\-`)+" [flags]", c.name)
		for _, m := range flagInHelp.FindAllStringSubmatch(help.stdout, -1) {
			if m[1] == "help" {
				continue
			}
			assert.Contains(t, man, `.B \-\-`+strings.ReplaceAll(m[1], "-", `\-`), "%s --%s", c.name, m[1])
		}
	}
	cmd := exec.Command(needs.Command(t, "groff", "groff-base"), "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(man)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Empty(t, string(out), "groff warnings")
}

func TestBashCompletion(t *testing.T) {
	r := cli(t, nil, "completion", "bash")
	requireOK(t, r)
	needs.Command(t, "bash", "bash")
	script := filepath.Join(t.TempDir(), "completion.bash")
	require.NoError(t, os.WriteFile(script, []byte(r.stdout), 0o644))
	// Complete for real: a flag, a command, enumerated values, a positional.
	out, err := exec.Command("bash", "-c", `source `+script+`
COMP_WORDS=(pgbapi-proxy issue-client --na); COMP_CWORD=2; _pgbapi_proxy; echo "${COMPREPLY[@]}"
COMP_WORDS=(pgbapi-proxy re); COMP_CWORD=1; _pgbapi_proxy; echo "${COMPREPLY[@]}"
COMP_WORDS=(pgbapi-proxy init --key-type ""); COMP_CWORD=3; _pgbapi_proxy; echo "${COMPREPLY[@]}"
COMP_WORDS=(pgbapi-proxy serve --log-level w); COMP_CWORD=3; _pgbapi_proxy; echo "${COMPREPLY[@]}"
COMP_WORDS=(pgbapi-proxy completion ""); COMP_CWORD=2; _pgbapi_proxy; echo "${COMPREPLY[@]}"
COMP_WORDS=(pgbapi-proxy issue-client --name ""); COMP_CWORD=3; _pgbapi_proxy; echo "[${COMPREPLY[@]}]"
COMP_WORDS=(pgbapi-proxy init --server-); COMP_CWORD=2; _pgbapi_proxy; echo "${COMPREPLY[@]}"`).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, "--name\nrevoke\necdsa-p256 ecdsa-p384 rsa-2048 rsa-4096\nwarn\nbash zsh fish\n[]\n--server-cert-days\n", string(out))
	requireOneLineError(t, cli(t, nil, "completion", "tcsh"), 2, "bash, zsh or fish")
}

// zsh: the script parses (zsh -n), and an interactive zsh (driven through
// a pseudo-terminal with zpty) lists the right values on Tab Tab.
func TestZshCompletion(t *testing.T) {
	r := cli(t, nil, "completion", "zsh")
	requireOK(t, r)
	needs.Command(t, "zsh", "zsh")
	dir := t.TempDir()
	script := filepath.Join(dir, "_pgbapi-proxy")
	require.NoError(t, os.WriteFile(script, []byte(r.stdout), 0o644))
	out, err := exec.Command("zsh", "-n", script).CombinedOutput()
	require.NoError(t, err, "zsh -n: %s", out)

	for line, want := range map[string][]string{
		"pgbapi-proxy init --key-type ":   {"ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-4096"},
		"pgbapi-proxy serve --log-level ": {"debug", "info", "warn", "error"},
		"pgbapi-proxy completion ":        {"bash", "zsh", "fish"},
		"pgbapi-proxy s":                  {"serve", "show", "status"},
		"pgbapi-proxy init --server-":     {"cert-days"}, // the one match is inserted
	} {
		t.Run(line, func(t *testing.T) {
			t.Parallel()
			got := zshComplete(t, dir, line)
			for _, w := range want {
				assert.Regexp(t, `(^|\s)`+regexp.QuoteMeta(w)+`(\s|$)`, got, "%q", line)
			}
			assert.NotContains(t, got, "--server-days", "the deprecated name is not offered")
		})
	}
}

var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]|[\r\x07]`)

// zshComplete types line and Tab Tab into an interactive zsh whose fpath
// holds dir, and returns what the terminal showed after the line.
func zshComplete(t *testing.T, dir, line string) string {
	t.Helper()
	work := t.TempDir()
	capture := filepath.Join(work, "capture.zsh")
	require.NoError(t, os.WriteFile(capture, []byte(`zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PROMPT='> '; RPROMPT=''; fpath=(`+dir+` \$fpath); autoload -Uz compinit; compinit -u -d `+work+`/.zcompdump"
zpty -w z 'setopt autolist; unsetopt listambiguous listbeep; zstyle ":completion:*" menu no'
zpty -w z 'echo READY-$((40+2))'
out=''
for i in {1..100}; do
	while zpty -r -t z chunk; do out+=$chunk; done
	[[ $out == *READY-42* ]] && break
	sleep 0.1
done
zpty -n -w z "$1"$'\t\t'
out='' idle=0
for i in {1..300}; do
	if zpty -r -t z chunk; then
		out+=$chunk idle=0
	else
		(( idle++ ))
		[[ -n $out && idle -ge 30 ]] && break
		sleep 0.1
	fi
done
zpty -d z
print -r -- "$out"
`), 0o644))
	out, err := exec.Command("zsh", "-f", capture, line).CombinedOutput()
	require.NoError(t, err, "%s", out)
	text := ansiEscape.ReplaceAllString(string(out), " ")
	i := strings.Index(text, line)
	require.GreaterOrEqual(t, i, 0, "zsh never showed %q: %q", line, text)
	return text[i:]
}

// fish: the script parses (fish -n), and fish itself completes with it.
func TestFishCompletion(t *testing.T) {
	r := cli(t, nil, "completion", "fish")
	requireOK(t, r)
	needs.Command(t, "fish", "fish")
	script := filepath.Join(t.TempDir(), "pgbapi-proxy.fish")
	require.NoError(t, os.WriteFile(script, []byte(r.stdout), 0o644))
	out, err := exec.Command("fish", "-n", script).CombinedOutput()
	require.NoError(t, err, "fish -n: %s", out)
	complete := func(line string) string {
		cmd := exec.Command("fish", "--no-config", "-c", "source "+script+"; complete -C "+fishQuote(line))
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}
	assert.Equal(t, "ecdsa-p256\tkey type\necdsa-p384\tkey type\nrsa-2048\tkey type\nrsa-4096\tkey type\n", complete("pgbapi-proxy issue-client --key-type "))
	assert.Equal(t, "issue-client\tissue a client certificate (NAME.crt/.key) signed by the cluster CA\n", complete("pgbapi-proxy is"))
	assert.Equal(t, "--log-format\tlog format\n--log-level\tlog level\n", complete("pgbapi-proxy serve --log-"))
	assert.Contains(t, complete("pgbapi-proxy serve --log-level "), "warn\tlog level\n")
	assert.Equal(t, "bash\nfish\nzsh\n", complete("pgbapi-proxy completion "))
	assert.NotContains(t, complete("pgbapi-proxy init --"), "--server-days", "deprecated names are not offered")
}

// The enumerated values offered are the ones the commands accept.
func TestCompletionValuesAreAccepted(t *testing.T) {
	for _, v := range flagValues["log-level"] {
		_, err := newLogger(io.Discard, "text", v)
		assert.NoError(t, err, "--log-level %s", v)
	}
	for _, v := range flagValues["log-format"] {
		_, err := newLogger(io.Discard, v, "info")
		assert.NoError(t, err, "--log-format %s", v)
	}
	for _, v := range flagValues["key-type"] {
		_, err := pki.ParseKeyType(v)
		assert.NoError(t, err, "--key-type %s", v)
	}
	assert.Len(t, flagValues["key-type"], len(pki.KeyTypes))
	// Every flag named in the tables exists in some command.
	all := map[string]bool{}
	for _, c := range commands() {
		fs, _ := newFlagSet(c)
		fs.VisitAll(func(f *pflag.Flag) { all[f.Name] = true })
	}
	for _, list := range [][]string{dirFlags, fileFlags, userFlags} {
		for _, f := range list {
			assert.True(t, all[f], "--%s", f)
		}
	}
	for f := range flagValues {
		assert.True(t, all[f], "--%s", f)
	}
}
